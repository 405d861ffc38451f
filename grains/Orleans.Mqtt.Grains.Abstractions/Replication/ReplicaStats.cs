namespace Orleans.Mqtt.Grains;

/// <summary>Counts read from a silo's route replica.</summary>
[GenerateSerializer, Immutable]
public sealed record ReplicaStats(
    [property: Id(0)] long Sessions,
    [property: Id(1)] long Subscriptions,
    [property: Id(2)] long Retained);
