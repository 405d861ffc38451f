using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Telemetry;
using Orleans.Storage;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Drops the session copies that went stale on this silo's storage while it was away: the copies of the sessions it
/// handed over at its shutdown, and of those another silo took on while it was down. Their routes name another home,
/// with a newer version, or no longer exist and the copy says the session has expired. A stale copy is harmless to
/// correctness (an activation here drops it, see <see cref="ClientSessionGrain"/>), but nothing else would delete it.
/// The same goes for this silo's copies of other silos' sessions (<see cref="SessionCopyStore"/>): a copy older than
/// its routes' <see cref="ClientRoutes.StateBase"/> misses something the session acknowledged while this silo was
/// away, and a copy of a session that ended, is no longer persistent or is now homed here is of no use.
/// </summary>
/// <remarks>
/// Runs once, when the silo has caught up with a complete peer's replica and before its own replica is ready: no
/// session activated here has written yet (activations wait for the replica), so only a session migrated here in
/// that moment can write at the same time, and the storage's version check keeps the two apart.
/// </remarks>
internal sealed partial class StaleSessionCopies(
    RouteTable table,
    ReplicaBroadcaster replicas,
    ILocalSiloDetails localSilo,
    GrainRefs<IClientSessionGrain> sessionRefs,
    SessionCopyStore sessionCopies,
    IServiceProvider services,
    TimeProvider timeProvider,
    MqttMetrics metrics,
    ILogger<StaleSessionCopies> logger)
{
    private const int ClearsInFlight = 256;

    /// <summary>Drops the stale copies; returns how many.</summary>
    public async Task<int> DropAsync()
    {
        if (services.GetKeyedService<IGrainStorage>(MqttGrainStorage.Name) is not { } storage || storage is not ILocalGrainRecords records)
        {
            return 0;
        }

        var grainType = sessionRefs.Type;
        var candidates = records.FindKeys(ClientSessionGrain.StateName, grainType, clientId => table.Get(clientId)?.Home != localSilo.Name);
        var dropped = 0;
        foreach (var chunk in candidates.Chunk(ClearsInFlight))
        {
            var results = await Task.WhenAll(chunk.Select(clientId => DropIfStaleAsync(storage, GrainId.Create(grainType, clientId), clientId)));
            dropped += results.Count(d => d);
        }

        if (candidates.Count > 0)
        {
            metrics.SessionsStaleCopiesDropped.Add(dropped, new KeyValuePair<string, object?>("where", "start"));
            LogDropped(logger, dropped, candidates.Count);
        }

        var copies = records.FindKeys(SessionCopyStore.StateName, grainType, static _ => true);
        var droppedCopies = 0;
        foreach (var chunk in copies.Chunk(ClearsInFlight))
        {
            var results = await Task.WhenAll(chunk.Select(DropCopyIfStaleAsync));
            droppedCopies += results.Count(d => d);
        }

        if (droppedCopies > 0)
        {
            metrics.SessionsStaleCopiesDropped.Add(droppedCopies, new KeyValuePair<string, object?>("where", "replica"));
            LogCopiesDropped(logger, droppedCopies, copies.Count);
        }

        return dropped + droppedCopies;
    }

    // Through the copy store, which lets this take turns with a copy a home or a re-replication pass writes meanwhile.
    private async Task<bool> DropCopyIfStaleAsync(string clientId)
    {
        var routes = await RoutesOfAsync(clientId);
        return await sessionCopies.DropIfAsync(clientId, copy => routes is null
            ? copy.IsExpired(timeProvider.GetUtcNow().UtcDateTime)
            : !routes.Persistent || routes.Home == localSilo.Name || copy.StateVersion < routes.StateBase);
    }

    // With routes sharded by topic this silo holds the entries of the sessions it is home or a copy holder of; one it
    // does not hold (the session moved, or ended, while this silo was away) is read from every silo's parts. Not
    // through the entry holders' GetEntry, which waits for their replica to be complete: two silos starting together
    // would wait on each other.
    private async Task<ClientRoutes?> RoutesOfAsync(string clientId)
    {
        var local = table.Get(clientId);
        return local is not null || !replicas.Sharded ? local : await replicas.ReadWholeAsync(clientId);
    }

    private async Task<bool> DropIfStaleAsync(IGrainStorage storage, GrainId grainId, string clientId)
    {
        var stored = new GrainState<SessionState>();
        await storage.ReadStateAsync(ClientSessionGrain.StateName, grainId, stored);
        if (!stored.RecordExists || stored.State is not { } session)
        {
            return false;
        }

        // Without routes the session ended (or was never acknowledged); its copy goes once it would have expired
        // anyway, which a copy of a session still connected elsewhere never has.
        var routes = await RoutesOfAsync(clientId);
        var stale = routes is null
            ? session.IsExpired(timeProvider.GetUtcNow().UtcDateTime)
            : routes.Version > session.RouteVersion && routes.Home != localSilo.Name;
        if (!stale)
        {
            return false;
        }

        try
        {
            await storage.ClearStateAsync(ClientSessionGrain.StateName, grainId, stored);
            return true;
        }
        catch (InconsistentStateException)
        {
            // Written since it was read: a session migrated here just now owns the record.
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Dropped {Dropped} stale session copies from this silo's storage ({Candidates} stored sessions whose routes name another home or none)")]
    private static partial void LogDropped(ILogger logger, int dropped, int candidates);

    [LoggerMessage(Level = LogLevel.Information, Message = "Dropped {Dropped} of the {Copies} copies of other silos' sessions on this silo's storage: older than what their sessions acknowledged since, or of sessions that ended or are homed here now")]
    private static partial void LogCopiesDropped(ILogger logger, int dropped, int copies);
}
