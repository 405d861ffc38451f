using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Gateway;

/// <summary>The cluster's statistics over HTTP: <c>GET stats</c> in the group it is mapped into.</summary>
public static class StatsEndpoints
{
    /// <summary>
    /// Maps <c>GET stats</c>: the cluster's figures (<see cref="ClusterStats"/>: totals, each live gateway, each active
    /// silo), the same the <c>$SYS</c> topics publish, taken when asked.
    /// </summary>
    public static RouteGroupBuilder MapStatsEndpoints(this RouteGroupBuilder group)
    {
        group.MapGet("stats", GetStatsAsync)
            .WithName("GetClusterStats")
            .WithSummary("The cluster's statistics")
            .WithDescription("Totals (connected clients, sessions, subscriptions, retained messages, messages and bytes), each live gateway's and each active silo's figures.")
            .Produces<ClusterStats>();
        return group;
    }

    private static Task<ClusterStats> GetStatsAsync(IGrainFactory grains, CancellationToken cancellationToken) =>
        grains.GetGrain<IGatewayDirectoryGrain>(0).GetClusterStats().WaitAsync(cancellationToken);
}
