namespace Orleans.Mqtt.Grains;

/// <summary>A retained message as the admin API lists it.</summary>
[GenerateSerializer, Immutable]
public sealed record RetainedMessageInfo(
    [property: Id(0)] string Topic,
    [property: Id(1)] MqttMessage Message,
    [property: Id(2)] long Version);
