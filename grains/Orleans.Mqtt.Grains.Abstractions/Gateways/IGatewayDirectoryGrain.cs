namespace Orleans.Mqtt.Grains;

/// <summary>
/// The registry of live gateways. Each gateway reports in periodically; a gateway not heard from within the
/// configured timeout is dead, and the sessions connected through it become offline.
/// </summary>
public interface IGatewayDirectoryGrain : IGrainWithIntegerKey
{
    /// <summary>A gateway is alive. False when it was already declared dead: it must close its connections first.</summary>
    Task<bool> Heartbeat(string gatewayId);

    /// <summary>A gateway that drained and stopped: not dead, just gone.</summary>
    Task Leave(string gatewayId);

    /// <summary>Of the given gateway ids, those that are dead (not heard from within the timeout).</summary>
    Task<string[]> FindDead(string[] gatewayIds);

    /// <summary>The gateways known: those reporting in (alive unless silent longer than the timeout) and those declared dead or gone.</summary>
    Task<GatewayStatus[]> List();
}
