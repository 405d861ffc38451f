using Microsoft.AspNetCore.Http.HttpResults;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// <c>/api/v1/stats</c>: the cluster's figures (<see cref="ClusterStats"/>: totals, each live gateway, each active silo),
/// the same the <c>$SYS</c> topics publish, taken when asked.
/// </summary>
internal static class StatsEndpoints
{
    public static void Map(RouteGroupBuilder api) =>
        api.MapGet("/stats", StatsAsync).WithName("GetClusterStats")
            .WithSummary("The cluster's statistics: connected clients, sessions, subscriptions, retained messages, messages and bytes, in total and per gateway and silo.");

    private static async Task<Ok<ClusterStats>> StatsAsync(AdminCluster cluster, CancellationToken cancellationToken) =>
        TypedResults.Ok(await cluster.Grains.GetGrain<IGatewayDirectoryGrain>(0).GetClusterStats().WaitAsync(cancellationToken));
}
