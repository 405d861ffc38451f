using Orleans.Runtime.Placement;

namespace Orleans.Mqtt.Grains;

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
