namespace Orleans.Mqtt.Grains;

/// <summary>A live gateway's figures as of its last heartbeat (<c>LastReportUtc</c>); counters since <c>StartedAtUtc</c>.</summary>
[GenerateSerializer, Immutable]
public sealed record GatewayStats(
    [property: Id(0)] string GatewayId,
    [property: Id(1)] DateTime StartedAtUtc,
    [property: Id(2)] DateTime LastReportUtc,
    [property: Id(3)] long ConnectedClients,
    [property: Id(4)] TrafficCounters Traffic);
