using Orleans.Placement;

namespace Orleans.Mqtt.Grains;

/// <summary>Marks a grain class, keyed by client id, as placed on its session's home silo.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SessionHomePlacementAttribute : PlacementAttribute
{
    /// <summary>Creates the attribute.</summary>
    public SessionHomePlacementAttribute()
        : base(SessionHomePlacement.Instance)
    {
    }
}
