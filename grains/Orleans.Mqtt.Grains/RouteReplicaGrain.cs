using Orleans.Concurrency;

namespace Orleans.Mqtt.Grains;

/// <summary>Applies replicated route and retained changes to this silo's <see cref="RouteTable"/> and its durable copy.</summary>
[SiloPinnedPlacement]
[Reentrant]
internal sealed class RouteReplicaGrain(RouteTable table, IReplicaStore store) : Grain, IRouteReplicaGrain
{
    public Task Apply(ClientRoutes routes)
    {
        if (!table.Apply(routes))
        {
            return Task.CompletedTask;
        }

        // Only sessions that outlive their connection must survive a restart; presence never does.
        var durable = routes.Persistent ? routes with { Presence = null } : null;
        return store.SaveRoutesAsync(routes.ClientId, durable);
    }

    public Task<ReplicaStats> GetStats() =>
        Task.FromResult(new ReplicaStats(table.ClientCount, table.SubscriptionCount, table.RetainedCount));

    public Task ApplyRetained(RetainedUpdate update) =>
        table.ApplyRetained(update) ? store.SaveRetainedAsync(update) : Task.CompletedTask;
}
