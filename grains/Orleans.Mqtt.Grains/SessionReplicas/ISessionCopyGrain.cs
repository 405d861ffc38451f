namespace Orleans.Mqtt.Grains;

/// <summary>
/// The copies of other silos' persistent sessions that one silo holds on its storage (the grain is pinned to the silo
/// named by its key, see <see cref="SiloPinnedPlacement"/>).
/// </summary>
public interface ISessionCopyGrain : IGrainWithStringKey
{
    /// <summary>Stores every copy newer than the one held (a null state deletes it); durable when the call returns.</summary>
    [ResponseTimeout("00:00:05")]
    Task Store(SessionCopy[] copies);

    /// <summary>
    /// <see cref="Store"/>, and applies <paramref name="routes"/> to this silo's route replica as
    /// <see cref="IRouteReplicaGrain.Apply"/> does: the routes of sessions saved with these copies, whose first copy
    /// holder is also one of their route holders (<see cref="RoutesWithCopy"/>). Both durable when the call returns.
    /// </summary>
    /// <remarks>
    /// Served for silos of the previous release, which send it during a rolling upgrade, and called on them by this
    /// release's silos; <see cref="ISessionCopyGrainV2.StoreWithRoutesAndAsk"/> replaces it between silos that both
    /// serve that. Its name and parameter types are its identity on the wire (docs/architecture.md, "Rolling
    /// upgrades"): they must not change.
    /// </remarks>
    [ResponseTimeout("00:00:05")]
    Task StoreWithRoutes(SessionCopy[] copies, ClientRoutes[] routes);

    /// <summary>The version of the copy this silo holds of each of <paramref name="clientIds"/>' sessions (0: none).</summary>
    [ResponseTimeout("00:00:05")]
    Task<long[]> Versions(string[] clientIds);

    /// <summary>The copy of <paramref name="clientId"/>'s session this silo holds, or null.</summary>
    [ResponseTimeout("00:00:05")]
    Task<SessionCopy?> Fetch(string clientId);
}
