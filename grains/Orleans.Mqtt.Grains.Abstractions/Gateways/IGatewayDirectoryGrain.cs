namespace Orleans.Mqtt.Grains;

/// <summary>
/// The registry of live gateways and the keeper of the cluster's figures. Each gateway reports in periodically with
/// its counters; a gateway not heard from within the configured timeout is dead, and the sessions connected through
/// it become offline. The one activation publishes the cluster's <c>$SYS</c> topics.
/// </summary>
public interface IGatewayDirectoryGrain : IGrainWithIntegerKey
{
    /// <summary>
    /// A gateway is alive, with its figures. False when it was already declared dead: it must close its connections
    /// first.
    /// </summary>
    Task<bool> Heartbeat(GatewayReport report);

    /// <summary>A gateway that drained and stopped: not dead, just gone.</summary>
    Task Leave(string gatewayId);

    /// <summary>Of the given gateway ids, those that are dead (not heard from within the timeout).</summary>
    Task<string[]> FindDead(string[] gatewayIds);

    /// <summary>The gateways known: those reporting in (alive unless silent longer than the timeout) and those declared dead or gone.</summary>
    Task<GatewayStatus[]> List();

    /// <summary>The cluster's figures: totals, each live gateway's and each active silo's share.</summary>
    [ResponseTimeout("00:00:15")]
    Task<ClusterStats> GetClusterStats();
}
