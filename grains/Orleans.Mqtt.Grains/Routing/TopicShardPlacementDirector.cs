using Orleans.Runtime.Placement;

namespace Orleans.Mqtt.Grains;

internal sealed class TopicShardPlacementDirector(
    RouteHolders holders,
    IClusterMembershipService membership,
    PlacementStrategy defaultStrategy,
    PlacementDirectorResolver directors) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        if (holders.Sharded)
        {
            var silos = context.GetCompatibleSilos(target);
            var shard = (int)target.GrainIdentity.GetIntegerKey();
            if ((uint)shard < (uint)holders.Shards)
            {
                // The first holder serves; the next one holds the same routes and takes over when the first is gone.
                foreach (var holder in holders.HoldersOf(membership.CurrentSnapshot, shard))
                {
                    if (Array.IndexOf(silos, holder) >= 0)
                    {
                        return Task.FromResult(holder);
                    }
                }
            }
        }

        return directors.GetPlacementDirector(defaultStrategy).OnAddActivation(defaultStrategy, target, context);
    }
}
