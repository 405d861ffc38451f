namespace Orleans.Mqtt.Grains;

/// <summary>A part of a silo's replica, copied to a peer that catches up or repairs.</summary>
[GenerateSerializer, Immutable]
public sealed record ReplicaChunk(
    [property: Id(0)] ClientRoutes[] Routes,
    [property: Id(1)] RetainedUpdate[] Retained);
