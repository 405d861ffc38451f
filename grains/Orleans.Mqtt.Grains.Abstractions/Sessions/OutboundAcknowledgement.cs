namespace Orleans.Mqtt.Grains;

/// <summary>One acknowledgement from a client for an outbound QoS 1/2 message.</summary>
[GenerateSerializer, Immutable]
public readonly record struct OutboundAcknowledgement(
    [property: Id(0)] ushort PacketId,
    [property: Id(1)] OutboundAck Ack);
