namespace Orleans.Mqtt.Grains;

/// <summary>Result of one filter of a SUBSCRIBE.</summary>
[GenerateSerializer, Immutable]
public sealed record SubscribeResult(
    [property: Id(0)] byte[] GrantedQos,
    [property: Id(1)] Delivery[] Retained);
