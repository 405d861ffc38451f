namespace Orleans.Mqtt.Grains;

/// <summary>
/// Everything the route index needs to know about one client: its subscriptions, whether its session
/// outlives the connection, and where it is connected. Replicated whole, with a version, so applying it is
/// idempotent and order-independent (a replica keeps the highest version it saw). <c>SweepAtUtc</c> is when a
/// disconnected session next needs the sweeper: its delayed will is due, or it expires. The session expiry
/// interval lets a session whose stored state was lost with its silo be rebuilt from a replica. <c>Home</c> is the
/// name of the silo whose local storage holds the session's state (null: nothing stored); the session is activated
/// there. It is the silo's name, not its address: a silo restarted on the same storage comes back under a new address
/// (a new generation, often a new IP) but keeps its name, which its data directory holds. <c>ActiveOn</c> names the silo
/// whose activation wrote these routes and <c>UserName</c> the user the client last connected as; the admin API's
/// listing reads both (a session is listed by its home, or by the silo it is active on when it has none).
/// <c>StateBase</c> is the version of the session's state that was durable, on its home and its replica silos, when
/// this change was made: a copy of the state at least that new holds everything the session acknowledged before it.
/// With routes sharded by topic (<c>Mqtt:Routes:Sharding</c>) a silo receives only the part it holds: the same entry
/// and version with the wildcard filters and the exact filters of its shards; parts of one version merge.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ClientRoutes(
    [property: Id(0)] string ClientId,
    [property: Id(1)] long Version,
    [property: Id(2)] Subscription[] Subscriptions,
    [property: Id(3)] bool Persistent,
    [property: Id(4)] GatewayPresence? Presence,
    [property: Id(5)] DateTime? SweepAtUtc = null,
    [property: Id(6)] uint SessionExpiryInterval = 0,
    [property: Id(8)] string? Home = null,
    [property: Id(9)] string? ActiveOn = null,
    [property: Id(10)] string? UserName = null,
    [property: Id(11)] long StateBase = 0,
    [property: Id(12)] int? SubscriptionTotal = null)
{
    /// <summary>
    /// How many subscriptions the session has: with routes sharded by topic a silo holds only a part of them
    /// (<c>SubscriptionTotal</c> is then the whole count), otherwise all.
    /// </summary>
    public int SubscriptionCount => SubscriptionTotal ?? Subscriptions.Length;
}
