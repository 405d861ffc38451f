using Orleans.Concurrency;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Writes the session copies other silos send to this silo's <see cref="SessionCopyStore"/>. Reentrant: batches from
/// several homes are written at once, with the routes that ride along (<see cref="RoutesWithCopy"/>), and share the
/// storage's group commit instead of waiting for each other.
/// </summary>
[SiloPinnedPlacement]
[Reentrant]
internal sealed class SessionCopyGrain(SessionCopyStore store, ReplicaWriter replica) : Grain, ISessionCopyGrain
{
    public Task Store(SessionCopy[] copies) => store.StoreAsync(copies);

    public Task StoreWithRoutes(SessionCopy[] copies, ClientRoutes[] routes)
    {
        // The two stores commit at once (each its own group commit), as the two calls they replace would have.
        var writes = new Task[routes.Length + 1];
        writes[0] = store.StoreAsync(copies);
        for (var i = 0; i < routes.Length; i++)
        {
            writes[i + 1] = replica.ApplyAsync(routes[i]);
        }

        return Task.WhenAll(writes);
    }

    public Task<long[]> Versions(string[] clientIds) => store.VersionsAsync(clientIds);

    public Task<SessionCopy?> Fetch(string clientId) => store.FetchAsync(clientId);
}
