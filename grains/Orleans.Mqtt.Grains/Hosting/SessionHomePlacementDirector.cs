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
        if (routes.Get(target.GrainIdentity.Key.ToString()!)?.Home is { } home && ActiveSiloNamed(home, silos) is { } homeSilo)
        {
            return homeSilo;
        }

        return await directors.GetPlacementDirector(defaultStrategy).OnAddActivation(defaultStrategy, target, context);
    }

    private SiloAddress? ActiveSiloNamed(string name, SiloAddress[] compatible) =>
        membership.CurrentSnapshot.ActiveSilosNamed(name).FirstOrDefault(silo => Array.IndexOf(compatible, silo) >= 0);
}
