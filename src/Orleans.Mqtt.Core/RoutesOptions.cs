namespace Orleans.Mqtt;

/// <summary>Where each silo's route replica keeps a subscription (<c>Mqtt:Routes</c>).</summary>
public sealed class RoutesOptions
{
    /// <summary>
    /// <see cref="RouteSharding.Off"/>: every silo holds every subscription. <see cref="RouteSharding.Topic"/>: a
    /// filter without wildcards is held only by the <see cref="Copies"/> route holders of its topic shard, the silos
    /// its shard grain runs on; a client's entry (home, expiry, presence) by its entry holders (its home and the next
    /// silos of its ranking by client id) and the holders of its exact filters; a client with a wildcard filter by every
    /// silo. The default is <see cref="RouteSharding.Topic"/>.
    /// </summary>
    public RouteSharding Sharding { get; set; } = RouteSharding.Topic;

    /// <summary>
    /// With <see cref="RouteSharding.Topic"/>: how many silos hold each topic shard's exact subscriptions (all of them
    /// while fewer are active). One holder loses the shard's routes with its silo until the clients subscribe again.
    /// </summary>
    public int Copies { get; set; } = 2;
}

/// <summary>How the route replica is spread over the silos.</summary>
public enum RouteSharding
{
    /// <summary>Every silo holds every route.</summary>
    Off,

    /// <summary>
    /// Exact filters are held by their topic shard's route holders only, clients' entries by their entry holders and
    /// filters' holders; wildcard filters by every silo.
    /// </summary>
    Topic,
}
