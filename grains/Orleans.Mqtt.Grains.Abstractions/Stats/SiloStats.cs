namespace Orleans.Mqtt.Grains;

/// <summary>
/// One silo's share of the cluster's figures. <c>Sessions</c> and <c>Subscriptions</c> count only the sessions the
/// silo owns, so that the shares of the active silos add up to the cluster's total: those whose home (the silo that
/// stores them) it is or, kept in memory only, that are active on it, and of the sessions whose silo is not active
/// those in its slice of the client ids, a stable hash over the active silos.
/// <c>RetainedHeld</c> is the number of retained messages in the silo's replica (every replica holds all of them).
/// <c>Ready</c> is false while the silo's replica is still loading or catching up.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SiloStats(
    [property: Id(0)] string Silo,
    [property: Id(1)] string Address,
    [property: Id(2)] long Sessions,
    [property: Id(3)] long Subscriptions,
    [property: Id(4)] long RetainedHeld,
    [property: Id(5)] bool Ready);
