namespace Orleans.Mqtt.Grains;

/// <summary>MQTT 5 publish properties forwarded unchanged to subscribers.</summary>
[GenerateSerializer, Immutable]
public sealed record MessageProperties
{
    /// <summary>Content Type property.</summary>
    [Id(0)] public string? ContentType { get; init; }

    /// <summary>Response Topic property.</summary>
    [Id(1)] public string? ResponseTopic { get; init; }

    /// <summary>Correlation Data property.</summary>
    [Id(2)] public byte[]? CorrelationData { get; init; }

    /// <summary>Payload Format Indicator (0 unspecified bytes, 1 UTF-8).</summary>
    [Id(3)] public byte PayloadFormatIndicator { get; init; }

    /// <summary>Message Expiry Interval in seconds, 0 when absent.</summary>
    [Id(4)] public uint MessageExpiryInterval { get; init; }

    /// <summary>User properties in the order they were sent.</summary>
    [Id(5)] public UserProperty[]? UserProperties { get; init; }
}
