using Orleans.Runtime.Placement;

namespace Orleans.Mqtt.Grains;

internal sealed class SessionHomePlacementDirector(
    RouteTable routes,
    IClusterMembershipService membership,
    PlacementStrategy defaultStrategy,
    PlacementDirectorResolver directors) : IPlacementDirector
{
    public async Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);

        // A graceful shutdown hands a session to the silo it names; the session then makes that silo its home.
        if (IPlacementDirector.GetPlacementHint(target.RequestContextData, silos) is { } hint)
        {
            return hint;
        }

        // A replica still loading does not know every home yet (the activation waits for it too).
        await routes.Ready;
        var clientId = target.GrainIdentity.Key.ToString()!;
        if (routes.Get(clientId)?.Home is { } home)
        {
            if (ActiveSiloNamed(home, silos) is { } homeSilo)
            {
                return homeSilo;
            }

            // The home is lost: the first of its replica silos still active holds a copy, so the session recovers
            // from its own disk there and makes it its new home.
            foreach (var holder in SessionHolders.Rank(membership.CurrentSnapshot, clientId, home, exclude: null))
            {
                if (Array.IndexOf(silos, holder) >= 0)
                {
                    return holder;
                }
            }
        }

        return await directors.GetPlacementDirector(defaultStrategy).OnAddActivation(defaultStrategy, target, context);
    }

    private SiloAddress? ActiveSiloNamed(string name, SiloAddress[] compatible) =>
        membership.CurrentSnapshot.ActiveSilosNamed(name).FirstOrDefault(silo => Array.IndexOf(compatible, silo) >= 0);
}
