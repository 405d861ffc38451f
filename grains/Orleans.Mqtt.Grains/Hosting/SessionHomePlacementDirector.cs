using Orleans.Runtime.Placement;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Places a session on its home (<see cref="ClientRoutes.Home"/>), or, with the home lost, on the first active silo of
/// its holder ranking, which holds a copy. With routes sharded by topic this silo may hold no entry for the client: the
/// home is then asked of its entry holders (<see cref="EntryLocator"/>; a placement director may await, and Orleans
/// runs it only when the grain has no activation, whose address it then caches), and a new session is placed on the
/// first silo of its ranking by id, so that its home is one of the entry holders its id alone names.
/// </summary>
internal sealed class SessionHomePlacementDirector(
    RouteTable routes,
    RouteHolders holders,
    EntryLocator locator,
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
        if ((await locator.ReadAsync(clientId))?.Home is { } home)
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
        else if (holders.Sharded)
        {
            foreach (var silo in RouteHolders.EntryLookupOrder(membership.CurrentSnapshot, clientId))
            {
                if (Array.IndexOf(silos, silo) >= 0)
                {
                    return silo;
                }
            }
        }

        return await directors.GetPlacementDirector(defaultStrategy).OnAddActivation(defaultStrategy, target, context);
    }

    private SiloAddress? ActiveSiloNamed(string name, SiloAddress[] compatible) =>
        membership.CurrentSnapshot.ActiveSilosNamed(name).FirstOrDefault(silo => Array.IndexOf(compatible, silo) >= 0);
}
