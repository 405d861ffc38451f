namespace Orleans.Mqtt.Grains;

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
