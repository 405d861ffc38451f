namespace Orleans.Mqtt.Grains;

/// <summary>The CONNECT as the session grain needs it (with the user name the gateway authenticated, if any).</summary>
[GenerateSerializer, Immutable]
public sealed record ConnectRequest(
    [property: Id(0)] GatewayPresence Presence,
    [property: Id(1)] bool CleanStart,
    [property: Id(2)] uint SessionExpiryInterval,
    [property: Id(3)] MqttMessage? Will,
    [property: Id(4)] byte ProtocolVersion,
    [property: Id(5)] ushort ReceiveMaximum,
    [property: Id(6)] uint WillDelayInterval = 0,
    [property: Id(7)] string? UserName = null);
