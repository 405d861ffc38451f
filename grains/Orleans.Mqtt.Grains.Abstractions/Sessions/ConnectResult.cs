namespace Orleans.Mqtt.Grains;

/// <summary>The session grain's answer to a CONNECT.</summary>
[GenerateSerializer, Immutable]
public sealed record ConnectResult(
    [property: Id(0)] bool SessionPresent,
    [property: Id(1)] Delivery[] Resend,
    [property: Id(2)] MqttMessage? WillOfReplacedConnection);
