using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace Orleans.Mqtt.Grains;

/// <summary>Places a grain on the silo whose address (<see cref="SiloAddress.ToParsableString"/>) is the grain's key.</summary>
[GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class SiloPinnedPlacement : PlacementStrategy
{
    /// <summary>The single instance.</summary>
    public static readonly SiloPinnedPlacement Instance = new();
}

/// <summary>Marks a grain class as pinned to the silo named by its key.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SiloPinnedPlacementAttribute : PlacementAttribute
{
    /// <summary>Creates the attribute.</summary>
    public SiloPinnedPlacementAttribute()
        : base(SiloPinnedPlacement.Instance)
    {
    }
}

internal sealed class SiloPinnedPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silo = SiloAddress.FromParsableString(target.GrainIdentity.Key.ToString()!);
        foreach (var candidate in context.GetCompatibleSilos(target))
        {
            if (candidate.Equals(silo))
            {
                return Task.FromResult(silo);
            }
        }

        throw new OrleansException($"Silo {silo} named by grain {target.GrainIdentity} is not an active silo.");
    }
}
