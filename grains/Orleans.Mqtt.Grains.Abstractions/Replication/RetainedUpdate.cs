namespace Orleans.Mqtt.Grains;

/// <summary>A change of the retained message of one topic; <see cref="Message"/> is null when it is deleted.</summary>
[GenerateSerializer, Immutable]
public sealed record RetainedUpdate(
    [property: Id(0)] string Topic,
    [property: Id(1)] long Version,
    [property: Id(2)] MqttMessage? Message);
