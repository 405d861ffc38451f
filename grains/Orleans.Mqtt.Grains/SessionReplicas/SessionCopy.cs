namespace Orleans.Mqtt.Grains;

/// <summary>
/// A persistent session's whole state as one replica silo holds it, with the state version it was saved under
/// (<see cref="SessionState.StateVersion"/>). A null state is a deletion: the session ended at that version.
/// </summary>
[GenerateSerializer]
public sealed record SessionCopy(
    [property: Id(0)] string ClientId,
    [property: Id(1)] long Version,
    [property: Id(2)] SessionState? State);
