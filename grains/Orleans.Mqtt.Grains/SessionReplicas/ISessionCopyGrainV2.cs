namespace Orleans.Mqtt.Grains;

/// <summary>
/// The calls of the session copy grain (<see cref="SessionCopyGrain"/>, the grain behind
/// <see cref="ISessionCopyGrain"/>) added after <see cref="ISessionCopyGrain"/> was released. They are an interface of
/// their own because the grain is pinned to the silo its key names: during a rolling upgrade a call cannot be placed on
/// another silo that serves it, so the caller asks the target silo's manifest whether it lists this interface
/// (<see cref="SiloManifests"/>) and otherwise makes the released call.
/// </summary>
public interface ISessionCopyGrainV2 : IGrainWithStringKey
{
    /// <summary>
    /// <see cref="ISessionCopyGrain.Store"/>, and applies <paramref name="routes"/> to this silo's route replica as
    /// <see cref="IRouteReplicaGrain.ApplyAndAskServing"/> does: the routes of sessions saved with these copies, whose
    /// first copy holder is also one of their route holders (<see cref="RoutesWithCopy"/>). Both durable when the call
    /// returns. Answers, for each of <paramref name="routes"/>, which of its shards in <paramref name="ask"/> (shards
    /// this silo holds in the writer's view; empty: none asked) a shard grain activation on this silo serves once that
    /// change is in the table it matches on.
    /// </summary>
    [Alias("StoreWithRoutesAndAsk")]
    [ResponseTimeout("00:00:05")]
    Task<int[][]> StoreWithRoutesAndAsk(SessionCopy[] copies, ClientRoutes[] routes, int[][] ask);
}
