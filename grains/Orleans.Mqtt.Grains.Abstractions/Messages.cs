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

    /// <summary>Whether the message has expired at <paramref name="nowUtc"/>.</summary>
    public bool IsExpired(DateTime nowUtc) => ExpiresAtUtc is { } at && at <= nowUtc;

    /// <summary>The Message Expiry Interval to send on: the whole seconds left (at least 1), or 0 when it never expires.</summary>
    public uint RemainingExpiryInterval(DateTime nowUtc) =>
        ExpiresAtUtc is { } at ? (uint)Math.Max(1, Math.Ceiling((at - nowUtc).TotalSeconds)) : 0;
}

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

/// <summary>An MQTT 5 user property (name/value pair; order and duplicates are significant).</summary>
[GenerateSerializer, Immutable]
public sealed record UserProperty([property: Id(0)] string Name, [property: Id(1)] string Value);

/// <summary>A subscription of one client to one topic filter, with its MQTT 5 options.</summary>
[GenerateSerializer, Immutable]
public sealed record Subscription(
    [property: Id(0)] string Filter,
    [property: Id(1)] byte Qos,
    [property: Id(2)] bool NoLocal = false,
    [property: Id(3)] bool RetainAsPublished = false,
    [property: Id(4)] byte RetainHandling = 0,
    [property: Id(5)] uint SubscriptionId = 0);

/// <summary>
/// Where a client is connected right now: the gateway that holds its network connection, and the gateway's etcd
/// lease (0: none) that the client's ownership record hangs on.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record GatewayPresence(
    [property: Id(0)] IGatewayObserver Gateway,
    [property: Id(1)] string GatewayId,
    [property: Id(2)] long ConnectionId,
    [property: Id(3)] long LeaseId = 0);

/// <summary>
/// Everything the route index needs to know about one client: its subscriptions, whether its session
/// outlives the connection, and where it is connected. Replicated whole, with a version, so applying it is
/// idempotent and order-independent (a replica keeps the highest version it saw). <c>SweepAtUtc</c> is when a
/// disconnected session next needs the sweeper: its delayed will is due, or it expires. The session expiry
/// interval lets a session whose stored state was lost with its silo be rebuilt from a replica. <c>Home</c> is the
/// name of the silo whose local storage holds the session's state (null: nothing stored); the session is activated
/// there. It is the silo's name, not its address: a silo restarted on the same storage comes back under a new address
/// (a new generation, often a new IP) but keeps its name, which its data directory holds.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ClientRoutes(
    [property: Id(0)] string ClientId,
    [property: Id(1)] long Version,
    [property: Id(2)] Subscription[] Subscriptions,
    [property: Id(3)] bool Persistent,
    [property: Id(4)] GatewayPresence? Presence,
    [property: Id(5)] DateTime? SweepAtUtc = null,
    [property: Id(6)] uint SessionExpiryInterval = 0,
    [property: Id(8)] string? Home = null);

/// <summary>A change of the retained message of one topic; <see cref="Message"/> is null when it is deleted.</summary>
[GenerateSerializer, Immutable]
public sealed record RetainedUpdate(
    [property: Id(0)] string Topic,
    [property: Id(1)] long Version,
    [property: Id(2)] MqttMessage? Message);

/// <summary>What kind of packet a delivery puts on the wire.</summary>
public enum DeliveryKind : byte
{
    /// <summary>A PUBLISH packet.</summary>
    Publish = 0,

    /// <summary>A PUBREL packet re-sent for an outbound QoS 2 message whose PUBREC already arrived.</summary>
    PubRel = 1,
}

/// <summary>One packet for one client connection on a gateway.</summary>
[GenerateSerializer, Immutable]
public sealed record Delivery(
    [property: Id(0)] long ConnectionId,
    [property: Id(1)] MqttMessage Message,
    [property: Id(2)] byte Qos,
    [property: Id(3)] bool Retain,
    [property: Id(4)] ushort PacketId = 0,
    [property: Id(5)] bool Dup = false,
    [property: Id(6)] uint[]? SubscriptionIds = null,
    [property: Id(7)] DeliveryKind Kind = DeliveryKind.Publish);

/// <summary>
/// A message a topic shard hands to a session for QoS 1/2 delivery (queued while offline). <c>ShareKey</c> is the
/// full <c>$share/…</c> filter when it came through a shared subscription, so it can go to another member.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SessionDelivery(
    [property: Id(0)] MqttMessage Message,
    [property: Id(1)] byte Qos,
    [property: Id(2)] bool Retain,
    [property: Id(3)] uint[]? SubscriptionIds,
    [property: Id(4)] string? ShareKey = null);

/// <summary>The CONNECT as the session grain needs it.</summary>
[GenerateSerializer, Immutable]
public sealed record ConnectRequest(
    [property: Id(0)] GatewayPresence Presence,
    [property: Id(1)] bool CleanStart,
    [property: Id(2)] uint SessionExpiryInterval,
    [property: Id(3)] MqttMessage? Will,
    [property: Id(4)] byte ProtocolVersion,
    [property: Id(5)] ushort ReceiveMaximum,
    [property: Id(6)] uint WillDelayInterval = 0);

/// <summary>The session grain's answer to a CONNECT.</summary>
[GenerateSerializer, Immutable]
public sealed record ConnectResult(
    [property: Id(0)] bool SessionPresent,
    [property: Id(1)] Delivery[] Resend,
    [property: Id(2)] MqttMessage? WillOfReplacedConnection);

/// <summary>Result of one filter of a SUBSCRIBE.</summary>
[GenerateSerializer, Immutable]
public sealed record SubscribeResult(
    [property: Id(0)] byte[] GrantedQos,
    [property: Id(1)] Delivery[] Retained);

/// <summary>How a connection ended, as the session grain needs to know it.</summary>
public enum DisconnectKind : byte
{
    /// <summary>DISCONNECT with reason 0x00: the will is discarded.</summary>
    Normal = 0,

    /// <summary>MQTT 5 DISCONNECT with reason 0x04: publish the will.</summary>
    NormalWithWill = 1,

    /// <summary>The network connection ended without DISCONNECT (or the server closed it for a protocol error / keep alive).</summary>
    ConnectionLost = 2,
}

/// <summary>An acknowledgement from the client for an outbound QoS 1/2 message.</summary>
public enum OutboundAck : byte
{
    /// <summary>PUBACK (QoS 1 complete).</summary>
    PubAck = 0,

    /// <summary>PUBREC (QoS 2 first half).</summary>
    PubRec = 1,

    /// <summary>PUBCOMP (QoS 2 complete).</summary>
    PubComp = 2,
}

/// <summary>Counts read from a silo's route replica.</summary>
[GenerateSerializer, Immutable]
public sealed record ReplicaStats(
    [property: Id(0)] long Sessions,
    [property: Id(1)] long Subscriptions,
    [property: Id(2)] long Retained);

/// <summary>A part of a silo's replica, copied to a peer that catches up or repairs.</summary>
[GenerateSerializer, Immutable]
public sealed record ReplicaChunk(
    [property: Id(0)] ClientRoutes[] Routes,
    [property: Id(1)] RetainedUpdate[] Retained);

/// <summary>One acknowledgement from a client for an outbound QoS 1/2 message.</summary>
[GenerateSerializer, Immutable]
public readonly record struct OutboundAcknowledgement(
    [property: Id(0)] ushort PacketId,
    [property: Id(1)] OutboundAck Ack);
