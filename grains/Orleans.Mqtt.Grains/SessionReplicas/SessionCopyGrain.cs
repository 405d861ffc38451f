using Orleans.Concurrency;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Writes the session copies other silos send to this silo's <see cref="SessionCopyStore"/>. Reentrant: batches from
/// several homes are written at once, with the routes that ride along (<see cref="RoutesWithCopy"/>), and share the
/// storage's group commit instead of waiting for each other.
/// </summary>
[SiloPinnedPlacement]
[Reentrant]
internal sealed class SessionCopyGrain(SessionCopyStore store, ReplicaWriter replica, RouteHolders holders) : Grain, ISessionCopyGrain, ISessionCopyGrainV2
{
    public Task Store(SessionCopy[] copies) => store.StoreAsync(copies);

    // The released call, for silos that do not serve StoreWithRoutesAndAsk (a rolling upgrade): nothing is asked, so
    // the writer tells the changed shards' grains, as it did before the question existed.
    public Task StoreWithRoutes(SessionCopy[] copies, ClientRoutes[] routes)
    {
        var writes = new Task[routes.Length + 1];
        writes[0] = store.StoreAsync(copies);
        for (var i = 0; i < routes.Length; i++)
        {
            writes[i + 1] = replica.ApplyAsync(routes[i]);
        }

        return Task.WhenAll(writes);
    }

    public async Task<int[][]> StoreWithRoutesAndAsk(SessionCopy[] copies, ClientRoutes[] routes, int[][] ask)
    {
        // The two stores commit at once (each its own group commit), as the two calls they replace would have.
        var stored = store.StoreAsync(copies);
        var writes = new Task<int[]>[routes.Length];
        for (var i = 0; i < routes.Length; i++)
        {
            writes[i] = ApplyAndAskAsync(routes[i], ask[i]);
        }

        var applied = Task.WhenAll(writes);
        await Task.WhenAll(stored, applied);
        return await applied;
    }

    public Task<long[]> Versions(string[] clientIds) => store.VersionsAsync(clientIds);

    public Task<SessionCopy?> Fetch(string clientId) => store.FetchAsync(clientId);

    // As IRouteReplicaGrain.ApplyAndAskServing: the answer is taken once the change is in the table.
    private async Task<int[]> ApplyAndAskAsync(ClientRoutes routes, int[] ask)
    {
        await replica.ApplyAsync(routes);
        return ask.Length == 0 ? [] : holders.Serving(ask);
    }
}
