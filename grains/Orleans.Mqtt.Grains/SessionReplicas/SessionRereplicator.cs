using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Telemetry;
using Orleans.Storage;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Restores <c>Mqtt:SessionReplicas</c> copies of the sessions that do not save on their own: a session's holders are
/// chosen at each save (<see cref="SessionReplicator"/>), so an idle one whose holder died would keep one copy fewer
/// until its next save, and lose its queue with its home next. On every change of the active silos, each silo makes
/// one pass over the sessions on its storage whose holders changed (<see cref="SessionHolders.CopyHolders"/>):
/// <list type="bullet">
/// <item>Sessions homed here: each holder is asked which version it holds, and sent this silo's record where it holds
/// none or an older one.</item>
/// <item>Copies of sessions whose home is not active: the silo holding the copy sends it to the silos the session
/// fails over to (the first <c>SessionReplicas</c> of its ranking), where they hold an older version or none. Every
/// surviving holder does so, since none knows which others survived; with 2 replicas only one copy survives the home,
/// and with more the store keeps the newest of what arrives. A copy older than the routes' state base is not sent
/// (a recovery would not take it). With routes sharded by topic, a copy whose entry this silo no longer holds is
/// looked up through <see cref="EntryLocator"/>.</item>
/// <item>Copies this silo holds although it is no longer among the session's holders: dropped once every holder has
/// said it holds that version or a newer one. One whose holders do not have it yet (their home's pass is still under
/// way) is looked at again in a later pass.</item>
/// </list>
/// Each target silo gets one call per batch (<c>Mqtt:SessionRereplicationBatch</c> sessions, 1 MiB of queued payloads
/// at most), one call at a time, with <c>Mqtt:SessionRereplicationPause</c> between calls. A newer view cancels the
/// pass and starts one over the sessions whose holders differ from the last view whose pass finished; a pass that left
/// something undone (a call failed, a drop waits for a holder) runs again after a few seconds. A save running at the
/// same time is safe: a copy only ever takes a newer version (<see cref="SessionCopyStore"/>).
/// </summary>
internal sealed partial class SessionRereplicator(
    IClusterMembershipService membership,
    RouteTable table,
    RouteHolders routeHolders,
    EntryLocator locator,
    SessionCopyStore localCopies,
    GrainRefs<ISessionCopyGrain> copyRefs,
    GrainRefs<IClientSessionGrain> sessionRefs,
    IServiceProvider services,
    ILocalSiloDetails localSilo,
    IOptions<MqttBrokerOptions> options,
    TimeProvider timeProvider,
    MqttMetrics metrics,
    ILogger<SessionRereplicator> logger) : SiloBackgroundWork
{
    private const long MaxBatchBytes = 1 << 20;
    private const int MaxRetries = 10;
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(5);
    private static readonly KeyValuePair<string, object?> KindHome = new("kind", "home");
    private static readonly KeyValuePair<string, object?> KindOrphan = new("kind", "orphan");
    private readonly Channel<ClusterMembershipSnapshot> _views = Channel.CreateBounded<ClusterMembershipSnapshot>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });

    private readonly Lock _gate = new();
    private ClusterMembershipSnapshot? _latest;
    private CancellationTokenSource? _pass;

    protected override void Run(CancellationToken stopping)
    {
        if (options.Value.SessionReplicas > 1)
        {
            _ = Task.Run(() => WatchAsync(stopping));
            _ = Task.Run(() => RunAsync(stopping));
        }
    }

    // Hands every new set of active silos to the passes, cancelling the one under way.
    private async Task WatchAsync(CancellationToken cancellationToken)
    {
        List<SiloAddress>? seen = null;
        try
        {
            await foreach (var view in membership.MembershipUpdates.WithCancellation(cancellationToken))
            {
                var active = ActiveSilos(view);
                if (seen is not null && SameSilos(seen, active))
                {
                    continue;
                }

                seen = active;
                lock (_gate)
                {
                    _latest = view;
                    _pass?.Cancel();
                    _views.Writer.TryWrite(view);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (services.GetKeyedService<IGrainStorage>(MqttGrainStorage.Name) is not ILocalGrainRecords)
            {
                LogCannotList(logger);
                return;
            }

            // Which sessions are homed where, and which ended, is in the route replica.
            await table.Ready.WaitAsync(cancellationToken);
            ClusterMembershipSnapshot? finished = null;
            var retries = 0;
            while (await _views.Reader.WaitToReadAsync(cancellationToken))
            {
                if (!_views.Reader.TryRead(out var view))
                {
                    continue;
                }

                using var pass = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                lock (_gate)
                {
                    _pass = pass;
                }

                bool done;
                try
                {
                    done = await PassAsync(view, finished, pass.Token);
                }
                catch (OperationCanceledException) when (pass.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    // A newer view: the next pass covers this one's sessions too (it compares with the last finished).
                    continue;
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    LogPassFailed(logger, ex);
                    done = false;
                }
                finally
                {
                    lock (_gate)
                    {
                        _pass = null;
                    }
                }

                if (done)
                {
                    finished = view;
                    retries = 0;
                }
                else if (++retries <= MaxRetries)
                {
                    _ = RetryAsync(view, cancellationToken);
                }
                else
                {
                    // Left to the next membership change or the silo's start check.
                    LogGaveUp(logger, MaxRetries);
                    retries = 0;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private async Task RetryAsync(ClusterMembershipSnapshot view, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(RetryDelay, timeProvider, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        lock (_gate)
        {
            // Not over a newer view waiting in the channel (it would be dropped for this one).
            if (ReferenceEquals(_latest, view) && _views.Reader.Count == 0)
            {
                _views.Writer.TryWrite(view);
            }
        }
    }

    /// <summary>One pass over this silo's sessions for <paramref name="view"/>; returns whether it left nothing undone.</summary>
    private async Task<bool> PassAsync(ClusterMembershipSnapshot view, ClusterMembershipSnapshot? previous, CancellationToken cancellationToken)
    {
        var storage = services.GetRequiredKeyedService<IGrainStorage>(MqttGrainStorage.Name);
        var records = (ILocalGrainRecords)storage;
        var started = timeProvider.GetTimestamp();
        var replicas = options.Value.SessionReplicas;
        var home = localSilo.Name;
        var self = localSilo.SiloAddress;
        var work = new Dictionary<SiloAddress, List<Item>>();
        var drops = new Dictionary<string, DropCheck>(StringComparer.Ordinal);
        var counts = new Counts();

        // A scan of the storage's log while it is written may list a key twice.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var clientId in records.FindKeys(ClientSessionGrain.StateName, sessionRefs.Type, id => table.Get(id) is { Persistent: true } r && r.Home == home))
        {
            if (!seen.Add(clientId))
            {
                continue;
            }

            var holders = SessionHolders.CopyHolders(view, clientId, home, replicas);
            if (previous is not null && SameSilos(holders, SessionHolders.CopyHolders(previous, clientId, home, replicas)))
            {
                continue;
            }

            counts.Checked++;
            foreach (var holder in holders)
            {
                Add(work, holder, new Item(clientId, Home: true, Send: true, Drop: null, StateBase: null));
            }
        }

        seen.Clear();
        // With routes sharded by topic a silo holds the entries of the sessions it holds copies of in the view it last
        // followed, not necessarily of those it held copies of before: a copy without an entry here asks its entry
        // holders (EntryLocator), so that it is sent on, or dropped, all the same.
        var sharded = routeHolders.Sharded;
        foreach (var clientId in records.FindKeys(SessionCopyStore.StateName, sessionRefs.Type, id => table.Get(id) is { } r ? r is { Persistent: true, Home: { } h } && h != home : sharded))
        {
            if (!seen.Add(clientId) || await RoutesOfAsync(clientId, cancellationToken) is not { Persistent: true, Home: { } owner } routes || owner == home)
            {
                continue;
            }

            var holders = SessionHolders.CopyHolders(view, clientId, owner, replicas);
            if (previous is not null && SameSilos(holders, SessionHolders.CopyHolders(previous, clientId, owner, replicas)))
            {
                continue;
            }

            var ownerActive = view.ActiveSilosNamed(owner).Any();
            var held = holders.Contains(self);
            if ((ownerActive && held) || holders.Count == 0)
            {
                // The home writes to its holders, this silo among them.
                continue;
            }

            counts.Checked++;
            var drop = held ? null : (drops[clientId] = new DropCheck(holders.Count));
            foreach (var holder in holders)
            {
                if (!holder.Equals(self))
                {
                    Add(work, holder, new Item(clientId, Home: false, Send: !ownerActive, drop, routes.StateBase));
                }
            }
        }

        var batchSize = options.Value.SessionRereplicationBatch;
        var pause = options.Value.SessionRereplicationPause;
        foreach (var (target, items) in work)
        {
            for (var start = 0; start < items.Count; start += batchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                await SendAsync(storage, target, items.GetRange(start, Math.Min(batchSize, items.Count - start)), counts);
                if (pause > TimeSpan.Zero)
                {
                    await Task.Delay(pause, timeProvider, cancellationToken);
                }
            }
        }

        foreach (var (clientId, check) in drops)
        {
            if (!check.Settled)
            {
                counts.Unfinished = true;
            }
            else if (await localCopies.DropAsync(clientId, check.Version))
            {
                counts.Dropped++;
            }
        }

        if (counts.Dropped > 0)
        {
            metrics.SessionsStaleCopiesDropped.Add(counts.Dropped, new KeyValuePair<string, object?>("where", "not_holder"));
        }

        var elapsed = timeProvider.GetElapsedTime(started);
        if (counts.Checked > 0)
        {
            LogPass(logger, ActiveSilos(view).Count, counts.Checked, counts.Copied, counts.Dropped, counts.Failed, (long)elapsed.TotalMilliseconds, !counts.Unfinished);
        }

        return !counts.Unfinished;
    }

    // One call to ask what the target holds, then as few calls as the batch limits allow to send what it lacks.
    private async Task SendAsync(IGrainStorage storage, SiloAddress target, List<Item> items, Counts counts)
    {
        var grain = copyRefs.Get(target.ToParsableString());
        var ids = new string[items.Count];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = items[i].ClientId;
        }

        long[] theirs;
        try
        {
            theirs = await grain.Versions(ids);
        }
        catch (Exception ex)
        {
            Failed(items.Count, "versions", target, ex, counts);
            foreach (var item in items)
            {
                item.Drop?.Block();
            }

            return;
        }

        var batch = new List<SessionCopy>();
        var sent = new List<Item>();
        long bytes = 0;
        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i];
            var mine = item.Home ? await ReadHomeAsync(storage, item.ClientId) : await localCopies.FetchAsync(item.ClientId);
            if (mine is null)
            {
                // The session ended, or the copy went, since the pass listed it: nothing to send or keep.
                item.Drop?.Settle(0);
                continue;
            }

            if (theirs[i] >= mine.Version || (!item.Home && mine.Version < item.StateBase))
            {
                // Held there already; or a copy a recovery would not take anyway (older than what was acknowledged).
                item.Drop?.Settle(mine.Version);
                continue;
            }

            if (!item.Send)
            {
                // Its home sends it (a pass of its own): this copy stays until the holder has it.
                item.Drop?.Block();
                continue;
            }

            batch.Add(mine);
            sent.Add(item);
            bytes += EstimatedBytes(mine.State!);
            if (bytes >= MaxBatchBytes)
            {
                await StoreAsync(grain, target, batch, sent, counts);
                bytes = 0;
            }
        }

        if (batch.Count > 0)
        {
            await StoreAsync(grain, target, batch, sent, counts);
        }
    }

    private async Task StoreAsync(ISessionCopyGrain grain, SiloAddress target, List<SessionCopy> batch, List<Item> sent, Counts counts)
    {
        try
        {
            await grain.Store([.. batch]);
            var homes = 0;
            for (var i = 0; i < sent.Count; i++)
            {
                homes += sent[i].Home ? 1 : 0;
                sent[i].Drop?.Settle(batch[i].Version);
            }

            counts.Copied += batch.Count;
            if (homes > 0)
            {
                metrics.SessionsRereplicated.Add(homes, KindHome);
            }

            if (batch.Count > homes)
            {
                metrics.SessionsRereplicated.Add(batch.Count - homes, KindOrphan);
            }
        }
        catch (Exception ex)
        {
            Failed(batch.Count, "store", target, ex, counts);
            foreach (var item in sent)
            {
                item.Drop?.Block();
            }
        }

        batch.Clear();
        sent.Clear();
    }

    private void Failed(int sessions, string reason, SiloAddress target, Exception ex, Counts counts)
    {
        counts.Failed += sessions;
        counts.Unfinished = true;
        metrics.SessionRereplicationFailures.Add(sessions, new KeyValuePair<string, object?>("reason", reason));
        LogCallFailed(logger, ex, reason, target, sessions);
    }

    // This silo's routes of the client, or, with routes sharded by topic and no entry here, its entry holders'.
    private async Task<ClientRoutes?> RoutesOfAsync(string clientId, CancellationToken cancellationToken)
    {
        var local = table.Get(clientId);
        if (local is not null || !routeHolders.Sharded)
        {
            return local;
        }

        cancellationToken.ThrowIfCancellationRequested();
        return await locator.ReadAsync(clientId);
    }

    private async Task<SessionCopy?> ReadHomeAsync(IGrainStorage storage, string clientId)
    {
        var stored = new GrainState<SessionState>();
        await storage.ReadStateAsync(ClientSessionGrain.StateName, GrainId.Create(sessionRefs.Type, clientId), stored);
        return stored.RecordExists && stored.State is { } session ? new SessionCopy(clientId, session.StateVersion, session) : null;
    }

    // What a copy costs on the wire, near enough to bound a batch: the queued and in-flight messages dominate.
    private static long EstimatedBytes(SessionState state)
    {
        long bytes = 256;
        foreach (var delivery in state.Queue)
        {
            bytes += 64 + delivery.Message.Topic.Length + delivery.Message.Payload.Length;
        }

        foreach (var inflight in state.Inflight)
        {
            bytes += 64 + inflight.Delivery.Message.Topic.Length + inflight.Delivery.Message.Payload.Length;
        }

        return bytes;
    }

    private static void Add(Dictionary<SiloAddress, List<Item>> work, SiloAddress target, Item item)
    {
        if (!work.TryGetValue(target, out var items))
        {
            work[target] = items = [];
        }

        items.Add(item);
    }

    private static List<SiloAddress> ActiveSilos(ClusterMembershipSnapshot view)
    {
        var active = new List<SiloAddress>();
        foreach (var member in view.Members.Values)
        {
            if (member.Status == SiloStatus.Active)
            {
                active.Add(member.SiloAddress);
            }
        }

        active.Sort();
        return active;
    }

    private static bool SameSilos(List<SiloAddress> a, List<SiloAddress> b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }

        foreach (var silo in a)
        {
            if (!b.Contains(silo))
            {
                return false;
            }
        }

        return true;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Session re-replication pass over {Silos} active silos: {Checked} sessions whose holders changed, {Copied} copies written, {Dropped} copies no longer held dropped, {Failed} failed, in {ElapsedMs} ms (complete: {Complete})")]
    private static partial void LogPass(ILogger logger, int silos, int @checked, int copied, int dropped, int failed, long elapsedMs, bool complete);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session re-replication call ({Reason}) to silo {Silo} for {Sessions} sessions failed; the pass runs again")]
    private static partial void LogCallFailed(ILogger logger, Exception ex, string reason, SiloAddress silo, int sessions);

    [LoggerMessage(Level = LogLevel.Error, Message = "Session re-replication pass failed; it runs again")]
    private static partial void LogPassFailed(ILogger logger, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session re-replication still incomplete after {Retries} passes over the same membership view; what is left waits for the next membership change or the silo's start check")]
    private static partial void LogGaveUp(ILogger logger, int retries);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The grain storage cannot list its records (ILocalGrainRecords): sessions are not re-replicated after a membership change, only at their next save")]
    private static partial void LogCannotList(ILogger logger);

    // One session to look at on one target silo.
    private sealed record Item(string ClientId, bool Home, bool Send, DropCheck? Drop, long? StateBase);

    // Whether every holder of a session this silo no longer holds has said it holds this silo's version or a newer one.
    private sealed class DropCheck(int targets)
    {
        private int _remaining = targets;
        private bool _blocked;

        public long Version { get; private set; }

        public bool Settled => !_blocked && _remaining <= 0;

        public void Settle(long version)
        {
            _remaining--;
            Version = Math.Max(Version, version);
        }

        public void Block() => _blocked = true;
    }

    private sealed class Counts
    {
        public int Checked;
        public int Copied;
        public int Dropped;
        public int Failed;
        public bool Unfinished;
    }
}
