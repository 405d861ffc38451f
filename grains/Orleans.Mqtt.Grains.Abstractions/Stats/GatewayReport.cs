namespace Orleans.Mqtt.Grains;

/// <summary>
/// A gateway's heartbeat: its id and what it counted. <c>Incarnation</c> tells one run of the gateway process from the
/// next (a restarted gateway keeps a configured id but starts its counters at zero); <c>Traffic</c> holds the counters
/// since that run started and <c>ConnectedClients</c> its open MQTT connections (after CONNACK).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record GatewayReport(
    [property: Id(0)] string GatewayId,
    [property: Id(1)] long Incarnation = 0,
    [property: Id(2)] DateTime StartedAtUtc = default,
    [property: Id(3)] long ConnectedClients = 0,
    [property: Id(4)] TrafficCounters? Traffic = null);
