namespace Orleans.Mqtt.Grains;

/// <summary>
/// Where a client is connected right now: the gateway that holds its network connection, and the gateway's etcd
/// lease (0: none) that the client's ownership record hangs on.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record GatewayPresence(
    [property: Id(0)] IGatewayObserver Gateway,
    [property: Id(1)] string GatewayId,
    [property: Id(2)] long ConnectionId,
    [property: Id(3)] long LeaseId = 0);
