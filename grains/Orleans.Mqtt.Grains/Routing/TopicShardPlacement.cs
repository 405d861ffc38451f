using Orleans.Placement;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Places a topic shard grain on the first active route holder of its shard (<see cref="RouteHolders"/>), the silo
/// whose replica holds the shard's exact subscriptions, when routes are sharded by topic; otherwise as the silo's
/// default strategy places it.
/// </summary>
[GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class TopicShardPlacement : PlacementStrategy
{
    /// <summary>The single instance.</summary>
    public static readonly TopicShardPlacement Instance = new();
}

/// <summary>Marks a grain class, keyed by topic shard, as placed on its shard's first route holder.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class TopicShardPlacementAttribute : PlacementAttribute
{
    /// <summary>Creates the attribute.</summary>
    public TopicShardPlacementAttribute()
        : base(TopicShardPlacement.Instance)
    {
    }
}
