namespace Orleans.Mqtt.Grains;

/// <summary>
/// Places a session grain on its home: the silo whose local storage holds the session's state, as the route replica
/// names it (<see cref="ClientRoutes.Home"/>, a silo name, which survives a restart on the same storage). Session
/// storage is silo-local, so an offline session that was collected while idle, and woken later by a message or a
/// reconnect arriving at another silo, would otherwise start there without its queue, in-flight messages and will.
/// Sessions without a home, or whose home is not an active silo, are placed by the silo's default strategy.
/// </summary>
[GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class SessionHomePlacement : PlacementStrategy
{
    /// <summary>The single instance.</summary>
    public static readonly SessionHomePlacement Instance = new();
}
