using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Keeps this silo's route replica complete. When the silo becomes active it catches up: a barrier on every peer
/// (after which every change anywhere also reaches this silo), then a copy from a peer whose replica is complete;
/// only then do matches on this silo run (<see cref="RouteTable.Ready"/>). Afterwards it compares digests with a
/// random peer periodically and copies the buckets that differ, so a change lost on the way is repaired.
/// </summary>
internal sealed partial class ReplicaSync(
    RouteTable table,
    RouteHolders holders,
    ReplicaWriter writer,
    ReplicaBroadcaster broadcaster,
    IClusterMembershipService membership,
    ILocalSiloDetails localSilo,
    GrainRefs<IRouteReplicaGrain> replicaRefs,
    StaleSessionCopies staleCopies,
    IOptions<MqttBrokerOptions> options,
    TimeProvider timeProvider,
    MqttMetrics metrics,
    ILogger<ReplicaSync> logger) : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private const int BucketsPerRead = 32;

    // At most this many clients a digest round reads from every silo to settle whether this silo should forget them.
    private const int MaxForgetChecks = 64;
    private readonly CancellationTokenSource _stopping = new();
    private ITimer? _timer;
    private int _running;
    private bool[]? _held;
    private HashSet<SiloAddress>? _active;

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(ReplicaSync), ServiceLifecycleStage.Active, CatchUpAsync, Stop);

    public void Dispose()
    {
        _timer?.Dispose();
        _stopping.Dispose();
    }

    /// <summary>Runs one digest comparison with a random ready peer now; returns the entries repaired.</summary>
    public async Task<int> RepairOnceAsync()
    {
        var peers = ActivePeers();
        Random.Shared.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(peers));
        foreach (var peer in peers)
        {
            if (await RepairWithAsync(peer) is { } repaired)
            {
                return repaired;
            }
        }

        return 0;
    }

    /// <summary>
    /// Runs one digest comparison with <paramref name="peer"/>; returns the entries repaired, or null when the peer is
    /// not ready.
    /// </summary>
    public async Task<int?> RepairWithAsync(SiloAddress peer)
    {
        var replica = Replica(peer);
        if (!await replica.IsReady())
        {
            return null;
        }

        // With routes sharded by topic, both hold every entry and the wildcard filters, and the exact filters of
        // the shards both are holders of: only that is compared and copied.
        var snapshot = membership.CurrentSnapshot;
        var shared = SharedShards(peer);
        var theirs = await replica.Digest(shared, localSilo.SiloAddress.ToParsableString());
        var sharedSet = RouteReplicaGrain.ShardSet(holders, shared);
        var bothEntryHolders = RouteReplicaGrain.BothEntryHolders(holders, snapshot, localSilo.SiloAddress, peer.ToParsableString());
        var mine = table.Digest(holders, sharedSet, bothEntryHolders);
        var differing = new List<int>();
        for (var i = 0; i < mine.Length && i < theirs.Length; i++)
        {
            if (mine[i] != theirs[i])
            {
                differing.Add(i);
            }
        }

        if (differing.Count == 0)
        {
            return 0;
        }

        var received = holders.Sharded ? new HashSet<string>(StringComparer.Ordinal) : null;
        var repaired = await CopyFromAsync(peer, differing, shared, onlyWithShards: false, received);
        if (repaired > 0)
        {
            metrics.ReplicaRepairs.Add(repaired, new KeyValuePair<string, object?>("kind", "digest"));
            LogRepaired(logger, repaired, differing.Count, peer);
        }

        if (received is not null)
        {
            var forgotten = await ForgetNotHeldAsync(snapshot, differing, sharedSet, bothEntryHolders, received);
            if (forgotten > 0)
            {
                metrics.ReplicaRepairs.Add(forgotten, new KeyValuePair<string, object?>("kind", "forget"));
                LogForgotten(logger, forgotten, peer);
                repaired += forgotten;
            }
        }

        return repaired;
    }

    // Routes sharded by topic: a client this silo counted as held by both (by its own copy) that the peer did not send
    // is one of them missing a change: the peer an addition (its own repair with this silo brings it), or this silo the
    // order to forget the client (RouteTable.Drop), which the peer cannot send, since it sends only what this silo
    // holds. The newest version the active silos hold says which: when it is newer than this silo's and leaves this
    // silo nothing, the client is forgotten here; when it is newer and leaves a part here, the part is taken.
    private async Task<int> ForgetNotHeldAsync(
        ClusterMembershipSnapshot snapshot, List<int> buckets, bool[]? shared, Func<ClientRoutes, bool>? bothEntryHolders, HashSet<string> received)
    {
        var candidates = table.HeldByBoth(new HashSet<int>(buckets), holders, shared, bothEntryHolders, received, MaxForgetChecks);
        var forgotten = 0;
        var held = holders.ShardsHeldBy(snapshot, localSilo.SiloAddress);
        foreach (var local in candidates)
        {
            var newest = await broadcaster.ReadWholeAsync(local.ClientId);
            if (newest is null || newest.Version <= local.Version)
            {
                continue;
            }

            if (!holders.Holds(snapshot, newest, localSilo.SiloAddress, holders.KeptShards()))
            {
                forgotten += await writer.DropAsync(local.ClientId, newest.Version, holders.ServedPart()) ? 1 : 0;
            }
            else
            {
                await writer.ApplyAsync(holders.PartFor(newest, held));
            }
        }

        return forgotten;
    }

    private async Task CatchUpAsync(CancellationToken cancellationToken)
    {
        try
        {
            // Only a complete peer's replica says which stored sessions went on elsewhere while this silo was away.
            if (await CatchUpFromPeersAsync())
            {
                await DropStaleSessionCopiesAsync();
            }
        }
        catch (Exception ex)
        {
            // The digest repair fills in what the copy missed; refusing to start would not help anyone.
            LogCatchUpFailed(logger, ex);
        }
        finally
        {
            table.MarkReady();
        }

        var interval = options.Value.ReplicaRepairInterval;
        _timer = timeProvider.CreateTimer(_ => _ = RepairRoundAsync(), null, interval, interval);
        if (holders.Sharded)
        {
            _ = FollowMembershipAsync(_stopping.Token);
        }
    }

    /// <summary>
    /// Routes sharded by topic: on every membership change, the shards this silo came to hold are copied from the
    /// silos that held them before (their shard grains wait meanwhile, <see cref="RouteHolders.WhenCaughtUp"/>), and
    /// the exact routes of the shards it no longer holds are dropped from memory.
    /// </summary>
    private async Task FollowMembershipAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(cancellationToken))
            {
                try
                {
                    await FollowAsync(snapshot);
                }
                catch (Exception ex)
                {
                    // The digest repair copies what the catch-up missed.
                    LogShardCatchUpFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    private async Task FollowAsync(ClusterMembershipSnapshot snapshot)
    {
        var held = holders.ShardsHeldBy(snapshot, localSilo.SiloAddress)!;
        var before = _held;
        _held = held;
        var active = ActiveSilos(snapshot);
        var membersChanged = _active is not null && !_active.SetEquals(active);
        _active = active;
        if (before is null)
        {
            holders.MarkFollowed(snapshot.Version);
            return;
        }

        var gained = new List<int>();
        for (var shard = 0; shard < held.Length; shard++)
        {
            if (held[shard] && !before[shard])
            {
                gained.Add(shard);
            }
        }

        // A shard still served by a shard grain activation here keeps its routes until the activation ends.
        if (holders.Follow(table, held, gained) is var pruned and > 0)
        {
            LogPruned(logger, pruned);
        }

        if (membersChanged)
        {
            // The entry holders changed with the active silos: clients this silo holds nothing of any more go, and
            // those it came to hold are copied below (reads of their entries here wait until then).
            await PruneEntriesAsync(snapshot);
            holders.MarkEntriesCatchingUp();
        }

        holders.MarkFollowed(snapshot.Version);

        // A client's changes reach its entry holders, not every silo: a silo that has become one (a holder left, or
        // this silo joined the ranking's top) copies those clients' newest versions as well, so that a placement, a
        // sweep or a failover here finds them.
        if (gained.Count == 0 && !membersChanged)
        {
            return;
        }

        if (membersChanged)
        {
            // Who sweeps which session changed with the active silos.
            table.UnparkSweeps();
        }

        try
        {
            var started = timeProvider.GetTimestamp();
            var peers = ActivePeers();

            // After the barrier every peer has finished the changes it sent with a view in which this silo did not
            // hold these shards, and sends the later ones here too: the former holders have everything.
            await Task.WhenAll(peers.Select(p => BarrierAsync(p, snapshot.Version)));
            var copied = 0;
            foreach (var peer in peers)
            {
                try
                {
                    copied += await CopyFromAsync(peer, null, [.. gained], onlyWithShards: true);
                }
                catch (Exception ex)
                {
                    LogPeerUnavailable(logger, ex, peer);
                }
            }

            metrics.ReplicaRepairs.Add(copied, new KeyValuePair<string, object?>("kind", "shard_catch_up"));
            LogShardsCaughtUp(logger, gained.Count, copied, peers.Count, timeProvider.GetElapsedTime(started).TotalMilliseconds);
        }
        finally
        {
            holders.MarkCaughtUp(gained);
            holders.MarkEntriesCaughtUp();
        }
    }

    /// <summary>
    /// Copies the exact routes of <paramref name="shard"/> from every peer, after a barrier on each at
    /// <paramref name="version"/>: what a shard grain activation on a silo that does not hold its shard in that view
    /// (placed by a silo with an older view, or started while this silo was taking a newer one in) needs before it
    /// serves. The changes sent with an older view have then completed everywhere; later ones reach the activation
    /// (<see cref="ITopicShardGrain.Accept"/>).
    /// </summary>
    public async Task CatchUpShardAsync(int shard, MembershipVersion version)
    {
        var started = timeProvider.GetTimestamp();
        var peers = ActivePeers();
        await Task.WhenAll(peers.Select(p => BarrierAsync(p, version)));
        var copied = 0;
        foreach (var peer in peers)
        {
            copied += await CopyShardsFromAsync(peer, [shard]);
        }

        metrics.ReplicaRepairs.Add(copied, new KeyValuePair<string, object?>("kind", "shard_catch_up"));
        LogShardsCaughtUp(logger, 1, copied, peers.Count, timeProvider.GetElapsedTime(started).TotalMilliseconds);
    }

    // Routes sharded by topic: forgets the clients this silo holds nothing of in the view (not an entry holder, no
    // exact filter in its shards, no wildcard filter), in memory and on disk.
    private async Task PruneEntriesAsync(ClusterMembershipSnapshot snapshot)
    {
        var self = localSilo.SiloAddress;
        if (_stopping.IsCancellationRequested || !snapshot.Members.TryGetValue(self, out var member) || member.Status != SiloStatus.Active)
        {
            // A silo that is stopping (or not yet active) holds nothing in that view; what it stores must stay for
            // its next start, which prunes by the view it then joins (the last silo of a cluster shut down in turn
            // would otherwise delete every route it stores).
            return;
        }

        var dropped = new List<string>();
        var kept = holders.KeptShards();
        var pruned = table.PruneEntries(r => holders.Holds(snapshot, r, self, kept), dropped);
        if (pruned > 0)
        {
            LogEntriesPruned(logger, pruned);
            await writer.ForgetDurableAsync(dropped);
        }
    }

    private static HashSet<SiloAddress> ActiveSilos(ClusterMembershipSnapshot snapshot) =>
        [.. snapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress)];

    // The shards whose exact routes this silo and the peer both hold (null without sharding).
    private int[]? SharedShards(SiloAddress peer)
    {
        var snapshot = membership.CurrentSnapshot;
        var mine = holders.ShardsHeldBy(snapshot, localSilo.SiloAddress);
        var theirs = holders.ShardsHeldBy(snapshot, peer);
        if (mine is null || theirs is null)
        {
            return null;
        }

        var shared = new List<int>();
        for (var shard = 0; shard < mine.Length; shard++)
        {
            if (mine[shard] && theirs[shard])
            {
                shared.Add(shard);
            }
        }

        return [.. shared];
    }

    private int[]? MyShards(ClusterMembershipSnapshot snapshot)
    {
        if (holders.ShardsHeldBy(snapshot, localSilo.SiloAddress) is not { } held)
        {
            return null;
        }

        var shards = new List<int>();
        for (var shard = 0; shard < held.Length; shard++)
        {
            if (held[shard])
            {
                shards.Add(shard);
            }
        }

        return [.. shards];
    }

    private async Task DropStaleSessionCopiesAsync()
    {
        try
        {
            await staleCopies.DropAsync();
        }
        catch (Exception ex)
        {
            // They stay on disk, where an activation would drop them; the silo starts all the same.
            LogStaleCopiesFailed(logger, ex);
        }
    }

    /// <summary>Returns whether the table now holds a complete peer's replica.</summary>
    private async Task<bool> CatchUpFromPeersAsync()
    {
        var snapshot = membership.CurrentSnapshot;
        var version = snapshot.Version;
        _held = holders.ShardsHeldBy(snapshot, localSilo.SiloAddress);
        _active = ActiveSilos(snapshot);
        holders.MarkFollowed(version);
        if (_held is not null)
        {
            // What the durable replica brought back of shards other silos hold now.
            holders.Follow(table, _held, []);
        }

        var peers = ActivePeers();
        if (peers.Count == 0)
        {
            LogFirstSilo(logger);
            return false;
        }

        var started = timeProvider.GetTimestamp();
        await Task.WhenAll(peers.Select(p => BarrierAsync(p, version)));
        foreach (var peer in peers)
        {
            bool ready;
            try
            {
                ready = await Replica(peer).IsReady();
            }
            catch (Exception ex)
            {
                LogPeerUnavailable(logger, ex, peer);
                continue;
            }

            if (ready)
            {
                // Every entry, the wildcard filters and the retained messages from this peer; with routes sharded by
                // topic, its part of the shards this silo holds, and the other parts from the other peers below.
                var shards = MyShards(snapshot);
                var copied = await CopyFromAsync(peer, null, shards, onlyWithShards: false);
                if (shards is not null)
                {
                    foreach (var other in peers)
                    {
                        if (!other.Equals(peer))
                        {
                            copied += await CopyShardsFromAsync(other, shards);
                        }
                    }
                }

                if (shards is not null)
                {
                    // What the durable replica brought back of clients other silos hold now.
                    await PruneEntriesAsync(snapshot);
                }

                metrics.ReplicaRepairs.Add(copied, new KeyValuePair<string, object?>("kind", "catch_up"));
                LogCaughtUp(logger, copied, peer, table.ClientCount, table.RetainedCount, timeProvider.GetElapsedTime(started).TotalMilliseconds);
                return true;
            }
        }

        // Every peer is starting too (a whole-cluster restart): each has its disk copy, the repair merges them.
        LogNoReadyPeer(logger, peers.Count);
        return false;
    }

    private async Task BarrierAsync(SiloAddress peer, MembershipVersion version)
    {
        try
        {
            await Replica(peer).Barrier(version.Value);
        }
        catch (Exception ex)
        {
            LogPeerUnavailable(logger, ex, peer);
        }
    }

    private async Task<int> CopyShardsFromAsync(SiloAddress peer, int[] shards)
    {
        try
        {
            return await CopyFromAsync(peer, null, shards, onlyWithShards: true);
        }
        catch (Exception ex)
        {
            // The digest repair with that peer copies what is missing.
            LogPeerUnavailable(logger, ex, peer);
            return 0;
        }
    }

    private Task<int> CopyFromAsync(SiloAddress peer, List<int>? buckets, int[]? shards, bool onlyWithShards) =>
        CopyFromAsync(peer, buckets, shards, onlyWithShards, null);

    private async Task<int> CopyFromAsync(SiloAddress peer, List<int>? buckets, int[]? shards, bool onlyWithShards, HashSet<string>? received)
    {
        var all = buckets ?? [.. Enumerable.Range(0, onlyWithShards ? RouteTable.DigestBuckets : RouteTable.DigestBuckets * 2)];
        var replica = Replica(peer);
        var changed = 0;
        for (var i = 0; i < all.Count; i += BucketsPerRead)
        {
            // With routes sharded by topic the peer sends only what this silo holds (see RouteReplicaGrain.Read).
            var chunk = await replica.Read([.. all.Skip(i).Take(BucketsPerRead)], shards, onlyWithShards, holders.Sharded ? localSilo.SiloAddress.ToParsableString() : null);
            foreach (var routes in chunk.Routes)
            {
                received?.Add(routes.ClientId);
                changed += await writer.ApplyAsync(routes) ? 1 : 0;
            }

            foreach (var update in chunk.Retained)
            {
                changed += await writer.ApplyRetainedAsync(update) ? 1 : 0;
            }
        }

        return changed;
    }

    private async Task RepairRoundAsync()
    {
        if (Interlocked.Exchange(ref _running, 1) == 1)
        {
            return;
        }

        try
        {
            table.PurgeTombstones(timeProvider.GetUtcNow().UtcDateTime - options.Value.ReplicaTombstoneLifetime);
            await RepairOnceAsync();
        }
        catch (Exception ex)
        {
            LogRepairFailed(logger, ex);
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    private Task Stop(CancellationToken cancellationToken)
    {
        _timer?.Dispose();
        _stopping.Cancel();
        return Task.CompletedTask;
    }

    private List<SiloAddress> ActivePeers() =>
        [.. membership.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active && !m.SiloAddress.Equals(localSilo.SiloAddress))
            .Select(m => m.SiloAddress)];

    private IRouteReplicaGrain Replica(SiloAddress silo) => replicaRefs.Get(silo.ToParsableString());

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dropping stale session copies from this silo's storage failed; they stay until an activation here drops them")]
    private static partial void LogStaleCopiesFailed(ILogger logger, Exception ex);

    [LoggerMessage(Level = LogLevel.Information, Message = "Route replica: first active silo, nothing to catch up")]
    private static partial void LogFirstSilo(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Route replica caught up from {Peer}: {Changed} entries applied, now {Sessions} sessions and {Retained} retained messages ({Elapsed:F0} ms)")]
    private static partial void LogCaughtUp(ILogger logger, int changed, SiloAddress peer, long sessions, long retained, double elapsed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Route replica: none of {Peers} peers is caught up yet; starting from the local copy, the digest repair merges the rest")]
    private static partial void LogNoReadyPeer(ILogger logger, int peers);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Route replica: peer {Peer} did not answer")]
    private static partial void LogPeerUnavailable(ILogger logger, Exception ex, SiloAddress peer);

    [LoggerMessage(Level = LogLevel.Error, Message = "Route replica catch-up failed; the digest repair fills in what is missing")]
    private static partial void LogCatchUpFailed(ILogger logger, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Route replica repaired {Changed} entries in {Buckets} differing buckets from {Peer}")]
    private static partial void LogRepaired(ILogger logger, int changed, int buckets, SiloAddress peer);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Route replica forgot {Forgotten} clients whose newest version, found in a digest repair with {Peer}, leaves this silo none of them")]
    private static partial void LogForgotten(ILogger logger, int forgotten, SiloAddress peer);

    [LoggerMessage(Level = LogLevel.Information, Message = "Route replica: {Shards} topic shards now held here caught up ({Changed} entries applied from {Peers} peers, {Elapsed:F0} ms)")]
    private static partial void LogShardsCaughtUp(ILogger logger, int shards, int changed, int peers, double elapsed);

    [LoggerMessage(Level = LogLevel.Information, Message = "Route replica: {Pruned} exact routes of topic shards no longer held here dropped from memory")]
    private static partial void LogPruned(ILogger logger, int pruned);

    [LoggerMessage(Level = LogLevel.Information, Message = "Route replica: {Pruned} clients this silo no longer holds anything of dropped")]
    private static partial void LogEntriesPruned(ILogger logger, int pruned);

    [LoggerMessage(Level = LogLevel.Error, Message = "Route replica: catching up the topic shards this silo came to hold failed; the digest repair fills in what is missing")]
    private static partial void LogShardCatchUpFailed(ILogger logger, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Route replica digest repair failed; the next round retries")]
    private static partial void LogRepairFailed(ILogger logger, Exception ex);
}
