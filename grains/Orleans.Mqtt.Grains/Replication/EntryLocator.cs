using Microsoft.Extensions.Logging;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Finds a client's newest routes for the readers that must not take a missing entry for "no session": the placement
/// of its session (<see cref="SessionHomePlacementDirector"/>) and the session's activation. Without sharding every
/// silo holds every entry and this silo's replica answers. With routes sharded by topic only the client's entry holders
/// (<see cref="RouteHolders.IsEntryHolder"/>) are sure to: this silo answers when it is one, and otherwise asks the first
/// silos of the client's ranking by id (<see cref="RouteHolders.EntryLookupOrder"/>), the first of which is an entry
/// holder whatever the home; when none of them answers, the parts every active silo holds are merged
/// (<see cref="ReplicaBroadcaster.ReadWholeAsync"/>).
/// </summary>
internal sealed partial class EntryLocator(
    RouteTable table,
    RouteHolders holders,
    ReplicaBroadcaster broadcaster,
    IClusterMembershipService membership,
    ILocalSiloDetails localSilo,
    GrainRefs<IRouteReplicaGrain> replicaRefs,
    ILogger<EntryLocator> logger)
{
    /// <summary>The client's newest routes as its entry holders have them; null when it has no session.</summary>
    public async Task<ClientRoutes?> ReadAsync(string clientId)
    {
        if (!holders.Sharded)
        {
            return table.Get(clientId);
        }

        var snapshot = membership.CurrentSnapshot;
        var (trusted, local) = await ReadLocalAsync(clientId, snapshot.Version);
        if (trusted)
        {
            return local;
        }

        // One call in the common case: the first of the ranking holds the entry whatever the home. The next ones are
        // entry holders too (but for the home's own place), for when the first does not answer.
        var order = RouteHolders.EntryLookupOrder(snapshot, clientId);
        for (var i = 0; i < order.Count && i <= holders.EntryCopies; i++)
        {
            if (order[i].Equals(localSilo.SiloAddress))
            {
                continue;
            }

            try
            {
                return await replicaRefs.Get(order[i].ToParsableString()).GetEntry(clientId, snapshot.Version.Value);
            }
            catch (Exception ex)
            {
                LogAskFailed(logger, ex, clientId, order[i]);
            }
        }

        return await broadcaster.ReadWholeAsync(clientId);
    }

    /// <summary>
    /// This silo's routes of the client once it has taken in membership <paramref name="version"/> and copied the
    /// entries it came to hold, and whether they can be trusted: this silo is an entry holder of the client (of the
    /// home its routes name, or whatever the home, when it holds none).
    /// </summary>
    public async Task<(bool Trusted, ClientRoutes? Routes)> ReadLocalAsync(string clientId, MembershipVersion version)
    {
        await holders.WhenEntriesServable(version);
        var snapshot = membership.CurrentSnapshot;
        var local = table.Get(clientId);
        var trusted = local is not null
            ? holders.IsEntryHolder(snapshot, clientId, RouteHolders.EntryHome(local), localSilo.SiloAddress)
            : holders.IsSureEntryHolder(snapshot, clientId, localSilo.SiloAddress);
        return (trusted, local);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Asking silo {Silo} for the routes of client {ClientId} failed; asking the next entry holder")]
    private static partial void LogAskFailed(ILogger logger, Exception ex, string clientId, SiloAddress silo);
}
