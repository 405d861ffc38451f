namespace Orleans.Mqtt.Grains;

/// <summary>
/// The cluster's figures at <c>AtUtc</c>: the totals, each live gateway's and each active silo's own. The traffic
/// totals are the live gateways' counters plus <c>DepartedTraffic</c>, what gateways that died, left or restarted had
/// counted when they last reported, so a total never drops when a gateway goes. They are kept by the gateway
/// directory's activation: one activated again after its silo was lost starts <c>DepartedTraffic</c> from zero.
/// <c>UpSinceUtc</c> is when the oldest live gateway started (null: no live gateway).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ClusterStats(
    [property: Id(0)] DateTime AtUtc,
    [property: Id(1)] DateTime? UpSinceUtc,
    [property: Id(2)] ClusterTotals Totals,
    [property: Id(3)] GatewayStats[] Gateways,
    [property: Id(4)] SiloStats[] Silos,
    [property: Id(5)] TrafficCounters DepartedTraffic);
