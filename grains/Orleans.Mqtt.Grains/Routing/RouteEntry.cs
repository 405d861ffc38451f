using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Grains;

/// <summary>A subscription in the route index; a shared one is indexed by its topic filter and keyed by its full filter.</summary>
internal sealed record RouteEntry(string ClientId, Subscription Subscription, string IndexFilter, string? ShareKey)
{
    /// <summary>Two entries are the same route when they are of the same client and the same (full) filter.</summary>
    public static IEqualityComparer<RouteEntry> SameRoute { get; } = new SameRouteComparer();

    /// <summary>The entry of one subscription of a client.</summary>
    public static RouteEntry For(string clientId, Subscription subscription) =>
        SharedSubscription.TryParse(subscription.Filter, out _, out var topicFilter)
            ? new RouteEntry(clientId, subscription, topicFilter, subscription.Filter)
            : new RouteEntry(clientId, subscription, subscription.Filter, null);

    private sealed class SameRouteComparer : IEqualityComparer<RouteEntry>
    {
        public bool Equals(RouteEntry? x, RouteEntry? y) =>
            ReferenceEquals(x, y) || (x is not null && y is not null && x.ClientId == y.ClientId && x.Subscription.Filter == y.Subscription.Filter);

        public int GetHashCode(RouteEntry obj) => HashCode.Combine(obj.ClientId, obj.Subscription.Filter);
    }
}
