namespace Orleans.Mqtt.Grains;

/// <summary>A gateway as the gateway directory knows it.</summary>
[GenerateSerializer, Immutable]
public sealed record GatewayStatus(
    [property: Id(0)] string GatewayId,
    [property: Id(1)] DateTime? LastHeartbeatUtc,
    [property: Id(2)] bool Alive);
