namespace Orleans.Mqtt.Protocol;

/// <summary>
/// Why a message was not delivered; counted on <c>mqtt.messages.dropped</c> through
/// <see cref="DropReasons.CountDrop"/> with the tag from <see cref="DropReasons"/>.
/// </summary>
public enum DropReason
{
    /// <summary>A QoS 0 message for a connection with <c>Mqtt:MaxPendingWrites</c> writes or <c>Mqtt:MaxPendingWriteBytes</c> bytes queued.</summary>
    SlowConsumer,

    /// <summary>A QoS 0 message for a connection that is gone from its gateway.</summary>
    ConnectionGone,

    /// <summary>Messages whose topic shard could not be reached.</summary>
    PublishFailed,

    /// <summary>A message whose Message Expiry Interval ran out before it was written.</summary>
    Expired,

    /// <summary>A PUBLISH larger than the client's Maximum Packet Size.</summary>
    PacketTooLargeForClient,

    /// <summary>QoS 0 messages for a gateway the cluster declared dead.</summary>
    GatewayDead,

    /// <summary>QoS 0 messages over the backlog a silo keeps for one gateway.</summary>
    GatewayBacklog,

    /// <summary>QoS 0 messages for a gateway that could not be reached.</summary>
    GatewayUnreachable,

    /// <summary>Messages for a session that no longer exists.</summary>
    NoSession,

    /// <summary>A message for a session whose offline queue is full.</summary>
    QueueFull,

    /// <summary>A QoS 0 message for an offline session.</summary>
    OfflineQos0,

    /// <summary>A message for a shared subscription without a member to take it.</summary>
    NoShareMember,

    /// <summary>A QoS 0 PUBLISH over its client's <c>Mqtt:Limits:MessagesPerSecond</c> or <c>Mqtt:Limits:BytesPerSecond</c>.</summary>
    RateLimited,

    /// <summary>A QoS 0 PUBLISH received while the gateway is overloaded (<c>Mqtt:Overload:*</c>).</summary>
    Overloaded,

    /// <summary>A message on a topic the subscriber may not read (a subscription wider than its ACL rules).</summary>
    NotAuthorized,

    /// <summary>QoS 0 messages a stopping silo could not push to their gateway before its messaging stopped.</summary>
    SiloStopping,
}
