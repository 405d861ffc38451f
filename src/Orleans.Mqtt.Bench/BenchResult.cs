using System.Globalization;
using System.Text;
using System.Text.Json.Serialization;

namespace Orleans.Mqtt.Bench;

/// <summary>Latency percentiles of delivered messages, in milliseconds.</summary>
internal sealed class LatencySummary
{
    /// <summary>Number of messages the percentiles are computed from.</summary>
    public long Count { get; init; }

    /// <summary>Median latency.</summary>
    public double P50 { get; init; }

    /// <summary>90th percentile latency.</summary>
    public double P90 { get; init; }

    /// <summary>99th percentile latency.</summary>
    public double P99 { get; init; }

    /// <summary>99.9th percentile latency.</summary>
    public double P999 { get; init; }

    /// <summary>Largest latency.</summary>
    public double Max { get; init; }

    /// <summary>Mean latency.</summary>
    public double Mean { get; init; }

    /// <summary>Summarises a histogram recorded in nanoseconds.</summary>
    public static LatencySummary FromNanoseconds(LatencyHistogram histogram)
    {
        const double NanosPerMilli = 1_000_000.0;
        return new LatencySummary
        {
            Count = histogram.Count,
            P50 = histogram.ValueAtPercentile(50) / NanosPerMilli,
            P90 = histogram.ValueAtPercentile(90) / NanosPerMilli,
            P99 = histogram.ValueAtPercentile(99) / NanosPerMilli,
            P999 = histogram.ValueAtPercentile(99.9) / NanosPerMilli,
            Max = histogram.Max / NanosPerMilli,
            Mean = histogram.Mean / NanosPerMilli,
        };
    }
}

/// <summary>The outcome of one bench run, printed as a summary and optionally written as JSON.</summary>
internal sealed class BenchResult
{
    /// <summary>Scenario name.</summary>
    public string Scenario { get; init; } = "pairs";

    /// <summary>Random id that namespaces this run's topics and client ids.</summary>
    public string RunId { get; init; } = "";

    /// <summary>Broker as host:port.</summary>
    public string Broker { get; init; } = "";

    /// <summary>MQTT protocol version, 5 or 311.</summary>
    public string Protocol { get; init; } = "5";

    /// <summary>QoS of publish and subscription.</summary>
    public int Qos { get; init; }

    /// <summary>Number of pairs requested.</summary>
    public int Pairs { get; init; }

    /// <summary>Number of pairs whose two clients connected and subscribed.</summary>
    public int PairsRunning { get; init; }

    /// <summary>Payload size in bytes.</summary>
    public int Size { get; init; }

    /// <summary>Messages in flight per publisher.</summary>
    public int Window { get; init; }

    /// <summary>Total publish rate cap in msg/s, 0 for closed loop.</summary>
    public double Rate { get; init; }

    /// <summary>Warm-up length in seconds.</summary>
    public double WarmupSeconds { get; init; }

    /// <summary>Length of the measured interval in seconds, as actually timed.</summary>
    public double MeasuredSeconds { get; init; }

    /// <summary>Deliveries per second in the measured interval (duplicates included).</summary>
    public double DeliveredPerSecond { get; init; }

    /// <summary>Publishes accepted per second in the measured interval (acknowledged at QoS 1/2).</summary>
    public double PublishedPerSecond { get; init; }

    /// <summary>Deliveries in the measured interval.</summary>
    public long DeliveredMeasured { get; init; }

    /// <summary>Publishes accepted in the measured interval.</summary>
    public long PublishedMeasured { get; init; }

    /// <summary>Deliveries over the whole run, drain included.</summary>
    public long DeliveredTotal { get; init; }

    /// <summary>Publishes accepted over the whole run.</summary>
    public long PublishedTotal { get; init; }

    /// <summary>Publish-to-deliver latency of messages sent in the measured interval.</summary>
    public LatencySummary LatencyMs { get; init; } = new();

    /// <summary>Accepted publishes that were never delivered.</summary>
    public long Lost { get; init; }

    /// <summary>Deliveries of a message that had been delivered before.</summary>
    public long Duplicates { get; init; }

    /// <summary>First deliveries that arrived after a later message of the same publisher.</summary>
    public long OutOfOrder { get; init; }

    /// <summary>Deliveries whose payload was not a bench payload of the expected pair.</summary>
    public long Malformed { get; init; }

    /// <summary>Clients that failed to connect or subscribe.</summary>
    public int ConnectErrors { get; init; }

    /// <summary>Clients the broker dropped while the run was going on.</summary>
    public int Disconnects { get; init; }

    /// <summary>Publishes that failed or were refused.</summary>
    public long PublishErrors { get; init; }

    /// <summary>QoS 0 only: times a publisher gave up waiting for its window to drain and sent anyway.</summary>
    public long WindowStalls { get; init; }

    /// <summary>CPU used by this tool during the measured interval, in cores.</summary>
    public double ToolCpuCores { get; init; }

    /// <summary>Process exit code the run ends with.</summary>
    public int ExitCode { get; init; }

    /// <summary>A few distinct error messages, for diagnosis.</summary>
    public IReadOnlyList<string> Errors { get; init; } = [];

    /// <summary>The human-readable summary printed on stdout.</summary>
    public string ToText()
    {
        var c = CultureInfo.InvariantCulture;
        var rate = Rate > 0 ? Rate.ToString("N0", c) + " msg/s" : "closed loop";
        var sb = new StringBuilder();
        sb.AppendLine(c, $"scenario     {Scenario}  run {RunId}  broker {Broker}  MQTT {Protocol}  QoS {Qos}");
        sb.AppendLine(c, $"load         {PairsRunning}/{Pairs} pairs  {Size} B payload  window {Window}  {rate}");
        sb.AppendLine(c, $"measured     {MeasuredSeconds:F2} s after {WarmupSeconds:F1} s warm-up");
        sb.AppendLine(c, $"delivered    {DeliveredPerSecond,12:N0} msg/s  ({DeliveredMeasured:N0} in interval, {DeliveredTotal:N0} total)");
        sb.AppendLine(c, $"published    {PublishedPerSecond,12:N0} msg/s  ({PublishedMeasured:N0} in interval, {PublishedTotal:N0} total)");
        sb.AppendLine(c, $"latency ms   p50 {LatencyMs.P50:F3}  p90 {LatencyMs.P90:F3}  p99 {LatencyMs.P99:F3}  p99.9 {LatencyMs.P999:F3}  max {LatencyMs.Max:F3}  (n={LatencyMs.Count:N0})");
        sb.AppendLine(c, $"delivery     lost {Lost:N0}  duplicates {Duplicates:N0}  out-of-order {OutOfOrder:N0}  malformed {Malformed:N0}");
        sb.AppendLine(c, $"errors       connect {ConnectErrors}  disconnects {Disconnects}  publish {PublishErrors:N0}  window-stalls {WindowStalls:N0}");
        sb.AppendLine(c, $"tool cpu     {ToolCpuCores:F2} cores");
        foreach (var error in Errors)
        {
            sb.AppendLine(c, $"  error: {error}");
        }

        return sb.ToString();
    }
}

/// <summary>Source-generated JSON metadata for <see cref="BenchResult"/>.</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(BenchResult))]
internal sealed partial class BenchJsonContext : JsonSerializerContext;
