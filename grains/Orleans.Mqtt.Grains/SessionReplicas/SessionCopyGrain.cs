using Orleans.Concurrency;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Writes the session copies other silos send to this silo's <see cref="SessionCopyStore"/>. Reentrant: batches from
/// several homes are written at once, with the routes that ride along (<see cref="RoutesWithCopy"/>), and share the
/// storage's group commit instead of waiting for each other.
/// </summary>
[SiloPinnedPlacement]
[Reentrant]
internal sealed class SessionCopyGrain(SessionCopyStore store, ReplicaWriter replica, RouteHolders holders) : Grain, ISessionCopyGrain
{
    public Task Store(SessionCopy[] copies) => store.StoreAsync(copies);

    public async Task<int[][]> StoreWithRoutes(SessionCopy[] copies, ClientRoutes[] routes, int[][] ask)
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
