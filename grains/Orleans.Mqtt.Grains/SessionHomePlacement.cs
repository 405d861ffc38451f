using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Places a session grain on its home: the silo whose local storage holds the session's state, as the route replica
/// names it (<see cref="ClientRoutes.Home"/>, a silo name, which survives a restart on the same storage). Session
/// storage is silo-local, so an offline session that was collected while idle, and woken later by a message or a
/// reconnect arriving at another silo, would otherwise start there without its queue, in-flight messages and will.
/// Sessions without a home, or whose home is not an active silo, are placed by the silo's default strategy.
/// </summary>
[GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class SessionHomePlacement : PlacementStrategy
{
    /// <summary>The single instance.</summary>
    public static readonly SessionHomePlacement Instance = new();
}

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
