namespace Orleans.Mqtt.Grains;

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
