namespace Orleans.Mqtt.Grains;

/// <summary>
/// The cluster's figures: live gateways and active silos, connected clients (the live gateways' connections),
/// sessions and subscriptions (the active silos' shares added up), retained messages (one up-to-date replica's count)
/// and the traffic counters of every gateway that reported since the cluster's figures were kept (see
/// <see cref="ClusterStats"/>).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ClusterTotals(
    [property: Id(0)] int Gateways,
    [property: Id(1)] int Silos,
    [property: Id(2)] long ConnectedClients,
    [property: Id(3)] long Sessions,
    [property: Id(4)] long Subscriptions,
    [property: Id(5)] long Retained,
    [property: Id(6)] TrafficCounters Traffic);
