using Orleans.Runtime.Placement;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Places a session on its home (<see cref="ClientRoutes.Home"/>), or, with the home lost, on the first active silo of
/// its holder ranking, which holds a copy. With routes sharded by topic this silo may hold no entry for the client: the
/// home is then asked of its entry holders (<see cref="EntryLocator"/>; a placement director may await, and Orleans
/// runs it only when the grain has no activation, whose address it then caches). A new session is placed on this silo,
/// the one that addresses the call: for a gateway's call, the silo the gateway's Orleans client sent it to (by the
/// grain's bucket, <c>ClientMessagingOptions.ClientSenderBuckets</c>), which then need not forward the call and its
/// answer, nor the gateway's later calls to the session. Any silo may be a home: the first silo of the client's ranking
/// by id, which readers without an entry ask (<see cref="RouteHolders.EntryLookupOrder"/>), is an entry holder whatever
/// the home, and the session's copies go to the first silos of its ranking without the home
/// (<see cref="SessionHolders.Rank"/>), as for any home.
/// </summary>
internal sealed class SessionHomePlacementDirector(
    RouteTable routes,
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
        else if (context.LocalSiloStatus == SiloStatus.Active && Array.IndexOf(silos, context.LocalSilo) >= 0)
        {
            return context.LocalSilo;
        }

        return await directors.GetPlacementDirector(defaultStrategy).OnAddActivation(defaultStrategy, target, context);
    }

    private SiloAddress? ActiveSiloNamed(string name, SiloAddress[] compatible) =>
        membership.CurrentSnapshot.ActiveSilosNamed(name).FirstOrDefault(silo => Array.IndexOf(compatible, silo) >= 0);
}
