namespace Orleans.Mqtt.Grains;

/// <summary>
/// Everything an MQTT session knows besides its live connection (which the route replica holds); persisted only for
/// sessions that outlive their connection, so that such a session can leave memory and come back whole.
/// </summary>
[GenerateSerializer]
public sealed class SessionState
{
    /// <summary>Subscriptions by topic filter.</summary>
    [Id(0)] public Dictionary<string, Subscription> Subscriptions { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Version of the last routes sent to the replicas.</summary>
    [Id(1)] public long RouteVersion { get; set; }

    /// <summary>QoS 1/2 messages waiting for the in-flight window or for the client to come back.</summary>
    [Id(2)] public List<SessionDelivery> Queue { get; set; } = [];

    /// <summary>Outbound QoS 1/2 messages sent and not yet fully acknowledged, in send order.</summary>
    [Id(3)] public List<InflightMessage> Inflight { get; set; } = [];

    /// <summary>Inbound QoS 2 packet ids received and not yet released by PUBREL.</summary>
    [Id(4)] public List<ushort> InboundQos2 { get; set; } = [];

    /// <summary>The will of the current connection.</summary>
    [Id(5)] public MqttMessage? Will { get; set; }

    /// <summary>Session expiry interval in seconds (0: the session ends with the connection; uint.MaxValue: never expires).</summary>
    [Id(6)] public uint SessionExpiryInterval { get; set; }

    /// <summary>When the last connection ended; null while connected.</summary>
    [Id(7)] public DateTime? DisconnectedAtUtc { get; set; }

    /// <summary>The packet id handed out last.</summary>
    [Id(8)] public ushort LastPacketId { get; set; }

    /// <summary>Messages dropped for this session because its queue was full.</summary>
    [Id(9)] public long DroppedMessages { get; set; }

    /// <summary>The MQTT 5 Will Delay Interval of the current connection's will, in seconds.</summary>
    [Id(10)] public uint WillDelayInterval { get; set; }

    /// <summary>A will waiting for its delay after the connection ended; cancelled by a reconnect.</summary>
    [Id(11)] public MqttMessage? PendingWill { get; set; }

    /// <summary>When <see cref="PendingWill"/> is published.</summary>
    [Id(12)] public DateTime? WillDueAtUtc { get; set; }

    /// <summary>The current connection's Receive Maximum (MQTT 5): at most this many QoS 1/2 messages in flight to it.</summary>
    [Id(13)] public ushort ReceiveMaximum { get; set; } = ushort.MaxValue;

    /// <summary>The revision of the client id's ownership record as this session last wrote it (0: none).</summary>
    [Id(14)] public long OwnerRevision { get; set; }

    /// <summary>The epoch of the ownership record as this session last wrote it.</summary>
    [Id(15)] public long OwnerEpoch { get; set; }

    /// <summary>The user name the client last connected as (null: anonymous), for the admin API.</summary>
    [Id(16)] public string? UserName { get; set; }

    /// <summary>Whether the session has been disconnected for longer than its expiry interval at <paramref name="nowUtc"/>.</summary>
    public bool IsExpired(DateTime nowUtc) =>
        DisconnectedAtUtc is { } at
        && SessionExpiryInterval != uint.MaxValue
        && at.AddSeconds(SessionExpiryInterval) < nowUtc;
}
