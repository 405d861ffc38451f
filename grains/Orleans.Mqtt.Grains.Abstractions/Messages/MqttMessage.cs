namespace Orleans.Mqtt.Grains;

/// <summary>An application message as it travels between gateways and grains. Immutable: the payload is shared, never copied per subscriber.</summary>
[GenerateSerializer, Immutable]
public sealed record MqttMessage
{
    /// <summary>The topic name the message was published to.</summary>
    [Id(0)] public required string Topic { get; init; }

    /// <summary>The application payload.</summary>
    [Id(1)] public ReadOnlyMemory<byte> Payload { get; init; }

    /// <summary>The QoS the publisher used (0, 1 or 2).</summary>
    [Id(2)] public byte Qos { get; init; }

    /// <summary>The retain flag as published.</summary>
    [Id(3)] public bool Retain { get; init; }

    /// <summary>MQTT 5 properties that are passed through to subscribers; null when there are none.</summary>
    [Id(4)] public MessageProperties? Properties { get; init; }

    /// <summary>Client id of the publisher (used for MQTT 5 No Local); null for messages the broker publishes itself.</summary>
    [Id(5)] public string? SenderClientId { get; init; }

    /// <summary>
    /// When the message expires (from its MQTT 5 Message Expiry Interval, counted from its arrival at the broker);
    /// null when it never expires.
    /// </summary>
    [Id(6)] public DateTime? ExpiresAtUtc { get; init; }

    /// <summary>
    /// The W3C <c>traceparent</c> of the broker's span that handled the message last (each hop of a traced message
    /// replaces it with its own); null when the message is not traced.
    /// </summary>
    [Id(7)] public string? TraceParent { get; init; }

    /// <summary>Whether the message has expired at <paramref name="nowUtc"/>.</summary>
    public bool IsExpired(DateTime nowUtc) => ExpiresAtUtc is { } at && at <= nowUtc;

    /// <summary>The Message Expiry Interval to send on: the whole seconds left (at least 1), or 0 when it never expires.</summary>
    public uint RemainingExpiryInterval(DateTime nowUtc) =>
        ExpiresAtUtc is { } at ? (uint)Math.Max(1, Math.Ceiling((at - nowUtc).TotalSeconds)) : 0;
}
