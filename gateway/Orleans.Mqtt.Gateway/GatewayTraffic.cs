using System.Diagnostics.Metrics;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// This gateway's counters since its process started, read from its own instruments (connections after CONNACK,
/// messages and bytes received and sent, messages dropped), for the heartbeat that carries them to the cluster's
/// figures (<see cref="GatewayReport"/>).
/// </summary>
internal sealed class GatewayTraffic : IDisposable
{
    private static readonly string[] Counted =
    [
        "mqtt.connections.active", "mqtt.messages.received", "mqtt.messages.sent", "mqtt.messages.dropped", "mqtt.bytes.received", "mqtt.bytes.sent",
    ];

    private readonly RunningTotal[] _totals = [.. Counted.Select(_ => new RunningTotal())];
    private readonly MeterListener _listener = new();

    public GatewayTraffic(MqttMetrics metrics, TimeProvider timeProvider)
    {
        StartedAtUtc = timeProvider.GetUtcNow().UtcDateTime;

        // One running total per counted instrument, handed to the listener as the instrument's state: a measurement on
        // the message path is one interlocked add, with no lookup and no allocation. Only this host's meter: a process
        // may run several hosts.
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            var i = Array.IndexOf(Counted, instrument.Name);
            if (i >= 0 && ReferenceEquals(instrument.Meter, metrics.Meter))
            {
                listener.EnableMeasurementEvents(instrument, _totals[i]);
            }
        };
        _listener.SetMeasurementEventCallback<long>(static (_, value, _, state) => Interlocked.Add(ref ((RunningTotal)state!).Value, value));
        _listener.Start();
    }

    /// <summary>A number telling this run of the gateway from an earlier or later one under the same id.</summary>
    public long Incarnation { get; } = Random.Shared.NextInt64(1, long.MaxValue);

    /// <summary>When this gateway started.</summary>
    public DateTime StartedAtUtc { get; }

    /// <summary>The heartbeat of <paramref name="gatewayId"/> with the counters as they are now.</summary>
    public GatewayReport Report(string gatewayId) => new(
        gatewayId,
        Incarnation,
        StartedAtUtc,
        Total(0),
        new TrafficCounters(Total(1), Total(2), Total(3), Total(4), Total(5)));

    public void Dispose() => _listener.Dispose();

    private long Total(int i) => Interlocked.Read(ref _totals[i].Value);

    private sealed class RunningTotal
    {
        public long Value;
    }
}
