namespace Orleans.Mqtt.Grains;

/// <summary>A subscription of one client to one topic filter, with its MQTT 5 options.</summary>
[GenerateSerializer, Immutable]
public sealed record Subscription(
    [property: Id(0)] string Filter,
    [property: Id(1)] byte Qos,
    [property: Id(2)] bool NoLocal = false,
    [property: Id(3)] bool RetainAsPublished = false,
    [property: Id(4)] byte RetainHandling = 0,
    [property: Id(5)] uint SubscriptionId = 0);
