using Microsoft.AspNetCore.Http.HttpResults;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// <c>/api/v1/nodes</c> (silos from the membership table, gateways from the gateway directory, this gateway) and
/// <c>/api/v1/health</c> (the same in one word).
/// </summary>
internal static class NodesEndpoints
{
    public static void Map(RouteGroupBuilder api)
    {
        api.MapGet("/nodes", NodesAsync).WithName("ListNodes")
            .WithSummary("Silos (membership status, start, last alive), gateways (last heartbeat, alive) and the gateway that answered.");
        api.MapGet("/health", HealthAsync).WithName("GetHealth")
            .WithSummary("The cluster's health: healthy, degraded or unavailable, with the counts behind it.");
    }

    private static async Task<Ok<NodesView>> NodesAsync(AdminCluster cluster)
    {
        var silos = await cluster.Grains.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: false);
        var gateways = await cluster.Grains.GetGrain<IGatewayDirectoryGrain>(0).List();
        var views = silos
            .OrderBy(s => s.SiloName, StringComparer.Ordinal)
            .Select(s => new SiloView(s.SiloAddress.ToParsableString(), s.SiloName, s.HostName, s.Status.ToString(), s.StartTime, s.IAmAliveTime))
            .ToArray();
        return TypedResults.Ok(new NodesView(views, gateways, This(cluster.Gateway)));
    }

    private static async Task<Ok<HealthView>> HealthAsync(AdminCluster cluster)
    {
        var silos = await cluster.ActiveSilosAsync();
        var gateways = await cluster.Grains.GetGrain<IGatewayDirectoryGrain>(0).List();
        var alive = gateways.Count(g => g.Alive);
        var silent = gateways.Count(g => !g.Alive && g.LastHeartbeatUtc is not null);
        var ready = cluster.Gateway.IsReady;
        var status = silos.Length == 0 ? "unavailable" : ready && silent == 0 ? "healthy" : "degraded";
        return TypedResults.Ok(new HealthView(status, silos.Length, alive, silent, ready));
    }

    private static ThisGatewayView This(MqttGateway gateway) => new(gateway.Id, gateway.IsReady, gateway.ConnectionCount);
}
