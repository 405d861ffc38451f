namespace Orleans.Mqtt.Grains;

/// <summary>A page request of the client listing; null filters match everything.</summary>
[GenerateSerializer, Immutable]
public sealed record ClientQuery(
    [property: Id(0)] int Limit,
    [property: Id(1)] string? After = null,
    [property: Id(2)] string? ClientIdPrefix = null,
    [property: Id(3)] string? UserName = null,
    [property: Id(4)] string? GatewayId = null);
