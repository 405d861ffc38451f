namespace Orleans.Mqtt.Grains;

/// <summary>One client in a listing, as its routes in the replica describe it.</summary>
[GenerateSerializer, Immutable]
public sealed record ClientSummary(
    [property: Id(0)] string ClientId,
    [property: Id(1)] bool Connected,
    [property: Id(2)] string? GatewayId,
    [property: Id(3)] string? UserName,
    [property: Id(4)] bool Persistent,
    [property: Id(5)] int Subscriptions,
    [property: Id(6)] string? Silo);
