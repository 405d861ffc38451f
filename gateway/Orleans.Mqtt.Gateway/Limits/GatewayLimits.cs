using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>The gateway-wide parts of <c>Mqtt:Limits</c> and <c>Mqtt:Overload</c>: the listeners' connection rates and the overload state.</summary>
internal sealed class GatewayLimits : IDisposable
{
    public GatewayLimits(MqttGatewayOptions options, MqttMetrics metrics, TimeProvider time, ILogger logger)
    {
        Options = options.Limits;
        Connections = new ConnectionRateLimiter(options.Limits, time);
        Overload = new OverloadMonitor(options.Overload, time, logger);
        metrics.ObserveOverload(() => Overload.IsOverloaded ? 1 : 0);
    }

    /// <summary>The per-client and per-listener limits.</summary>
    public LimitsOptions Options { get; }

    /// <summary>Each listener's connection rate.</summary>
    public ConnectionRateLimiter Connections { get; }

    /// <summary>Whether the process is overloaded, sampled on a timer.</summary>
    public OverloadMonitor Overload { get; }

    /// <summary>Starts sampling the overload state.</summary>
    public void Start() => Overload.Start();

    public void Dispose() => Overload.Dispose();
}
