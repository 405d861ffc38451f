namespace Orleans.Mqtt.Telemetry;

/// <summary>Distributed tracing (OpenTelemetry), the <c>Tracing</c> section. Off unless <see cref="Enabled"/>.</summary>
public sealed class TracingOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Tracing";

    /// <summary>Whether the process records spans at all. When false nothing listens and tracing costs nothing.</summary>
    public bool Enabled { get; set; }

    /// <summary>The share of CONNECT, SUBSCRIBE and PUBLISH operations traced, from 0 to 1.</summary>
    public double SamplingRatio { get; set; } = 0.01;

    /// <summary>Client ids whose operations are always traced.</summary>
    public List<string> AlwaysSampleClientIds { get; set; } = [];

    /// <summary>Topic filters whose publishes (and subscriptions to them) are always traced.</summary>
    public List<string> AlwaysSampleTopicFilters { get; set; } = [];

    /// <summary>What the <c>traceparent</c> user property of a PUBLISH does: see <see cref="TracePropagation"/>.</summary>
    public TracePropagation Propagation { get; set; } = TracePropagation.Replace;

    /// <summary>An OTLP endpoint (gRPC, e.g. <c>http://collector:4317</c>) spans are exported to; none when empty.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>A file spans are appended to, one JSON object per line (for debugging and tests); none when empty.</summary>
    public string? FilePath { get; set; }
}

/// <summary>What the broker does with the W3C <c>traceparent</c> user property of MQTT 5 PUBLISH packets.</summary>
public enum TracePropagation
{
    /// <summary>
    /// An incoming <c>traceparent</c> is continued; the delivered PUBLISH carries the context of the broker's own span
    /// that wrote it (added when the publisher sent none), so the subscriber's work is a child of the broker's.
    /// </summary>
    Replace,

    /// <summary>An incoming <c>traceparent</c> is continued; the delivered PUBLISH carries the publisher's unchanged.</summary>
    PassThrough,

    /// <summary>User properties are neither read nor written for tracing: every trace starts at the broker.</summary>
    Off,
}
