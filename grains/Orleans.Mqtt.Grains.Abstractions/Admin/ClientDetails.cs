namespace Orleans.Mqtt.Grains;

/// <summary>One client's session as the session grain knows it: connection, subscriptions and queues.</summary>
[GenerateSerializer, Immutable]
public sealed record ClientDetails(
    [property: Id(0)] string ClientId,
    [property: Id(1)] bool Connected,
    [property: Id(2)] string? GatewayId,
    [property: Id(3)] long? ConnectionId,
    [property: Id(4)] string? UserName,
    [property: Id(5)] bool Persistent,
    [property: Id(6)] uint SessionExpiryInterval,
    [property: Id(7)] DateTime? DisconnectedAtUtc,
    [property: Id(8)] Subscription[] Subscriptions,
    [property: Id(9)] int QueuedMessages,
    [property: Id(10)] int InflightMessages,
    [property: Id(11)] long DroppedMessages,
    [property: Id(12)] string Silo);
