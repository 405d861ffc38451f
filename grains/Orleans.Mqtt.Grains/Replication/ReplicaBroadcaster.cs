using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Sends a change to the route replica of every active silo and waits for all of them: a SUBACK or a retained PUBACK
/// that follows means the change is routable on every live silo. With routes sharded by topic a client's change goes to
/// the silos that hold some of its routes (<see cref="RouteHolders.Holds"/>), before or after it. A silo that does not answer is retried until it
/// answers or membership no longer lists it as active (a silo that comes back catches up from a peer). This silo's
/// own replica is written directly, not through its replica grain: the grain would only forward the change to the same
/// <see cref="ReplicaWriter"/>, at the price of a call (a message, a hand-off to the grain and one back) on every
/// CONNECT, SUBSCRIBE and UNSUBSCRIBE.
/// </summary>
internal sealed partial class ReplicaBroadcaster(
    IClusterMembershipService membership,
    GrainRefs<IRouteReplicaGrain> replicaRefs,
    ReplicaWriter localReplica,
    RouteTable localTable,
    RouteHolders holders,
    ILocalSiloDetails localSilo,
    TimeProvider timeProvider,
    MqttMetrics metrics,
    ILogger<ReplicaBroadcaster> logger,
    IGrainFactory grains)
{
    private static readonly TimeSpan GiveUpAfter = TimeSpan.FromSeconds(30);
    private static readonly KeyValuePair<string, object?> AllKind = new("kind", "all");
    private static readonly KeyValuePair<string, object?> PresenceKind = new("kind", "presence");
    private static readonly KeyValuePair<string, object?> HoldersKind = new("kind", "holders");
    private readonly Dictionary<long, Task> _inflight = [];
    private long _nextId;

    /// <summary>Whether routes are sharded by topic (<c>Mqtt:Routes:Sharding</c> Topic).</summary>
    public bool Sharded => holders.Sharded;

    /// <summary>
    /// Sends <paramref name="routes"/> to every active silo. With routes sharded by topic, to the silos that hold some of
    /// it or of <paramref name="previous"/> (the version this session last sent, all of it acknowledged; an empty
    /// version for a session that had none anywhere), each with its part (<see cref="RouteHolders.PartFor"/>), and to a
    /// silo that held some of <paramref name="previous"/> but holds none of <paramref name="routes"/> the order to forget
    /// it (an unsubscribe that took the client's last filter of its shards); a change of only the presence
    /// (<see cref="RouteHolders.OnlyPresenceChanged"/>) to the silos that hold the routes. Without
    /// <paramref name="previous"/> (who holds what is not known), to every active silo. The part for the session's first
    /// copy holder is offered to <paramref name="withCopy"/>, to ride in the copy's call. While this silo is alone in
    /// the cluster, untraced changes take a shorter way to the same write (<see cref="TryApplyAlone"/>).
    /// </summary>
    public Task Apply(ClientRoutes routes, ClientRoutes? previous = null, RoutesWithCopy? withCopy = null) =>
        withCopy is null && Activity.Current is null && TryApplyAlone(routes, previous) is { } alone
            ? alone
            : ApplyToSilos(routes, previous, withCopy);

    private async Task ApplyToSilos(ClientRoutes routes, ClientRoutes? previous, RoutesWithCopy? withCopy)
    {
        // A traced SUBSCRIBE or CONNECT: the calls to the other silos' replicas are its children.
        using var span = MqttTracing.StartChild(MqttTracing.Operations.Replicate, routes.ClientId);
        if (!holders.Sharded)
        {
            await ForEachSilo((routes, withCopy), null, static (b, silo, _, c) => b.SendRoutes(silo, c.routes, c.withCopy));
            return;
        }

        // Who holds the new version is worked out once per change (a ranking of the silos), not once per silo.
        var presenceOnly = previous is not null && RouteHolders.OnlyPresenceChanged(previous, routes);
        var ended = routes.Subscriptions.Length == 0 && routes.Presence is null && !routes.Persistent;
        var changed = ended || AloneInMembership() ? null
            : presenceOnly ? ShardsOfConnectionChange(previous!, routes)
            : ChangedShards(routes, previous);
        var change = new RoutesChange(routes, holders, withCopy, changed);
        Func<ClusterMembershipSnapshot, RoutesChange, HashSet<SiloAddress>?>? targets = null;
        if (previous is not null)
        {
            targets = presenceOnly
                ? static (view, c) => c.HoldersIn(view)
                : (view, c) => holders.PresenceHoldersOf(view, previous) is { } before && c.HoldersIn(view) is { } after
                    ? [.. before, .. after]
                    : null;
        }

        await ForEachSilo(change, targets, static (b, silo, view, c) => b.SendPart(silo, view, c), presenceOnly ? "presence" : "holders");
        if (change.Unserved() is not { } unserved)
        {
            return;
        }

        // The holders in this silo's view are not always where the shard is matched: an activation placed before a
        // membership change runs on until it sees the change, and a silo with an older view places one on a former
        // holder. A changed shard (of an exact filter added, changed or removed, or of every exact filter when the
        // session came back on another connection) whose first holder in this view did not report an activation serving
        // it (one there has the change in the table it matches on) takes the change at its activation, wherever it
        // runs, before the answer. Not tracked for Barrier: a shard activation catching up waits for that barrier, and
        // would wait for itself. The end of a session does not go there: what such an activation still matches of it
        // goes to a closed connection or to a session that no longer exists, which drops it.
        var calls = new Task[unserved.Count];
        var i = 0;
        foreach (var shard in unserved)
        {
            calls[i++] = AcceptAt(shard, routes);
        }

        metrics.ShardAccepts.Add(calls.Length);
        await Task.WhenAll(calls);
    }

    // Every other silo in the membership table is dead (one silo, as standalone): a shard activation can only run here,
    // where the write above applies the change, or on a silo that joins later, which copies the shard after a Barrier
    // that waits for that write.
    private bool AloneInMembership() => AloneIn(membership.CurrentSnapshot);

    private bool AloneIn(ClusterMembershipSnapshot view)
    {
        // The dictionary's own enumerator: its Values is an iterator, one object for every change of routes.
        foreach (var (_, member) in view.Members)
        {
            if (member.Status != SiloStatus.Dead && !member.SiloAddress.Equals(localSilo.SiloAddress))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// The change as <see cref="ApplyToSilos"/> makes it while this silo is the only one not dead in the membership
    /// table (the standalone broker): written to this silo's replica only, which holds every shard, without working out
    /// holders, parts and targets that can only name this silo, and with no shard activation elsewhere to tell. Null
    /// when another silo is listed (or this one is not active), and the general path runs. Registered for
    /// <see cref="Barrier"/> under the lock its view is read under, as every change is.
    /// </summary>
    private Task? TryApplyAlone(ClientRoutes routes, ClientRoutes? previous)
    {
        long id;
        TaskCompletionSource done;
        lock (_inflight)
        {
            var view = membership.CurrentSnapshot;
            if (!view.Members.TryGetValue(localSilo.SiloAddress, out var self) || self.Status != SiloStatus.Active || !AloneIn(view))
            {
                // In a cluster every change comes this way first: nothing is allocated for it here.
                return null;
            }

            done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            id = ++_nextId;
            _inflight[id] = done.Task;
        }

        metrics.ReplicaWrites.Add(1, KindOf(routes, previous));
        return ApplyAloneAsync(routes, id, done);
    }

    private async Task ApplyAloneAsync(ClientRoutes routes, long id, TaskCompletionSource done)
    {
        try
        {
            try
            {
                // Resumed where the commit completes, not on the session's scheduler: nothing here touches a grain, and
                // the session's own await goes back to it once, not once per layer.
                await localReplica.ApplyAsync(routes).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                LogRetrying(logger, localSilo.SiloAddress, 1, ex.GetType().Name);
                await ApplyTo(localSilo.SiloAddress, ApplyRoutes, ApplyRoutesHere, routes).ConfigureAwait(false);
            }
        }
        finally
        {
            lock (_inflight)
            {
                _inflight.Remove(id);
            }

            done.SetResult();
        }
    }

    // The kind ForEachSilo counts a change under: all when it goes to every silo (no previous version known, a wildcard
    // filter in either version, or routes not sharded), presence for a change of only the presence, holders otherwise.
    private KeyValuePair<string, object?> KindOf(ClientRoutes routes, ClientRoutes? previous)
    {
        if (!holders.Sharded || previous is null || HasWildcard(routes))
        {
            return AllKind;
        }

        if (RouteHolders.OnlyPresenceChanged(previous, routes))
        {
            return PresenceKind;
        }

        return HasWildcard(previous) ? AllKind : HoldersKind;
    }

    private bool HasWildcard(ClientRoutes routes)
    {
        foreach (var s in routes.Subscriptions)
        {
            if (holders.ShardOf(s) < 0)
            {
                return true;
            }
        }

        return false;
    }

    // The shards of the exact filters added, changed or removed from previous to routes (all of routes' without a
    // previous version); null when none.
    private HashSet<int>? ChangedShards(ClientRoutes routes, ClientRoutes? previous)
    {
        HashSet<int>? shards = null;
        foreach (var s in routes.Subscriptions)
        {
            if (holders.ShardOf(s) is var shard and >= 0 && (previous is null || Array.IndexOf(previous.Subscriptions, s) < 0))
            {
                (shards ??= []).Add(shard);
            }
        }

        if (previous is not null)
        {
            foreach (var s in previous.Subscriptions)
            {
                if (holders.ShardOf(s) is var shard and >= 0 && Array.IndexOf(routes.Subscriptions, s) < 0)
                {
                    (shards ??= []).Add(shard);
                }
            }
        }

        return shards;
    }

    // A change of only the presence that moves the session to another connection (a reconnect): the shards of all its
    // exact filters, whose activations deliver QoS 0 straight to that connection. Null when the connection stays (a
    // save that moves only the state base or sweep time), when there is none now (a disconnect: QoS 0 to an offline
    // session is dropped, as it is at the closed connection an activation still names) or no exact filter.
    private HashSet<int>? ShardsOfConnectionChange(ClientRoutes previous, ClientRoutes routes)
    {
        if (routes.Presence is not { } now
            || (previous.Presence?.ConnectionId == now.ConnectionId && string.Equals(previous.Presence?.GatewayId, now.GatewayId, StringComparison.Ordinal)))
        {
            return null;
        }

        HashSet<int>? shards = null;
        foreach (var s in routes.Subscriptions)
        {
            if (holders.ShardOf(s) is var shard and >= 0)
            {
                (shards ??= []).Add(shard);
            }
        }

        return shards;
    }

    private Task AcceptAt(int shard, ClientRoutes routes) =>
        RetryAsync(
            (Grain: grains.GetGrain<ITopicShardGrain>(shard), Logger: logger, Shard: shard, Routes: routes),
            static c => c.Grain.Accept(c.Routes),
            stillOwed: null,
            static (c, ex, attempt) => LogShardGaveUp(c.Logger, ex, c.Shard, attempt),
            static (c, ex, attempt) => LogShardRetrying(c.Logger, c.Shard, attempt, ex.GetType().Name));

    public Task ApplyRetained(RetainedUpdate update) =>
        ForEachSilo(update, null, static (b, silo, _, update) => b.ApplyTo(silo, static (r, u) => r.ApplyRetained(u), static (w, u) => w.ApplyRetainedAsync(u), update));

    private static Task ApplyRoutes(IRouteReplicaGrain replica, ClientRoutes routes) => replica.Apply(routes);

    private static Task ApplyRoutesHere(ReplicaWriter writer, ClientRoutes routes) => writer.ApplyAsync(routes);

    // The part a silo holds of these routes, the end of a session as it is (a tombstone where any of it was), or the
    // order to forget routes it no longer holds any of. A silo that is the first holder of a changed shard is asked
    // whether the shard's activation runs there.
    private Task SendPart(SiloAddress silo, ClusterMembershipSnapshot view, RoutesChange change)
    {
        var routes = change.Routes;
        var ended = routes.Subscriptions.Length == 0 && routes.Presence is null && !routes.Persistent;
        if (ended || change.HoldersIn(view) is not { } held || held.Contains(silo))
        {
            if (ended)
            {
                return SendRoutes(silo, routes, change.WithCopy);
            }

            // Routes that ride in the session copy's call are asked there (ISessionCopyGrainV2.StoreWithRoutesAndAsk
            // answers as ApplyAndAskServing does; a holder of the previous release answers none), or, when they do not
            // ride after all, by the call that sends them.
            var part = holders.PartFor(routes, holders.ShardsHeldBy(view, silo));
            var ask = change.FirstHeldBy(view, silo);
            if (change.WithCopy?.Offer(silo, part, ask) is { } riding)
            {
                return RideOrAskAsync(silo, part, ask, change, riding);
            }

            return SendPartAsking(silo, part, ask, change);
        }

        return ApplyTo(silo, static (r, routes) => r.Drop(routes.ClientId, routes.Version), (w, routes) => w.DropAsync(routes.ClientId, routes.Version, holders.ServedPart()), routes);
    }

    private Task SendPartAsking(SiloAddress silo, ClientRoutes part, int[]? ask, RoutesChange change) =>
        ask is not null
            ? ApplyTo(silo, ApplyAndAsk, ApplyAndAskHere, (Part: part, Ask: ask, Change: change))
            : ApplyTo(silo, ApplyRoutes, ApplyRoutesHere, part);

    private async Task RideOrAskAsync(SiloAddress silo, ClientRoutes part, int[]? ask, RoutesChange change, Task<int[]?> riding)
    {
        if (await riding is { } served)
        {
            change.Served(served);
            return;
        }

        await SendPartAsking(silo, part, ask, change);
    }

    private static async Task ApplyAndAsk(IRouteReplicaGrain replica, (ClientRoutes Part, int[] Ask, RoutesChange Change) c) =>
        c.Change.Served(await replica.ApplyAndAskServing(c.Part, c.Ask));

    private async Task ApplyAndAskHere(ReplicaWriter writer, (ClientRoutes Part, int[] Ask, RoutesChange Change) c)
    {
        await writer.ApplyAsync(c.Part);
        c.Change.Served(holders.Serving(c.Ask));
    }

    private Task SendRoutes(SiloAddress silo, ClientRoutes routes, RoutesWithCopy? withCopy) =>
        withCopy?.Offer(silo, routes, null) is { } riding ? RideOrSendAsync(silo, routes, riding) : ApplyTo(silo, ApplyRoutes, ApplyRoutesHere, routes);

    private async Task RideOrSendAsync(SiloAddress silo, ClientRoutes routes, Task<int[]?> riding)
    {
        if (await riding is null)
        {
            await ApplyTo(silo, ApplyRoutes, ApplyRoutesHere, routes);
        }
    }

    /// <summary>
    /// A client's whole routes as the active silos hold them: with routes sharded by topic each holds a part, and the
    /// parts of the newest version are merged (a session rebuilt from the routes needs every subscription). Silos that
    /// do not answer are left out; without sharding, this silo's replica.
    /// </summary>
    public async Task<ClientRoutes?> ReadWholeAsync(string clientId)
    {
        var whole = localTable.Get(clientId);
        if (!holders.Sharded)
        {
            return whole;
        }

        var reads = new List<Task<ClientRoutes?>>();
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            if (member.Status == SiloStatus.Active && !member.SiloAddress.Equals(localSilo.SiloAddress))
            {
                reads.Add(replicaRefs.Get(member.SiloAddress.ToParsableString()).Get(clientId));
            }
        }

        foreach (var read in reads)
        {
            ClientRoutes? part;
            try
            {
                part = await read;
            }
            catch (Exception ex)
            {
                LogReadFailed(logger, ex, clientId);
                continue;
            }

            if (part is null || (whole is not null && part.Version < whole.Version))
            {
                continue;
            }

            if (whole is null || part.Version > whole.Version)
            {
                whole = part;
                continue;
            }

            var added = part.Subscriptions.Where(s => Array.FindIndex(whole.Subscriptions, w => w.Filter == s.Filter) < 0).ToArray();
            if (added.Length > 0)
            {
                whole = whole with { Subscriptions = [.. whole.Subscriptions, .. added] };
            }
        }

        return whole is null ? null : whole with { SubscriptionTotal = null };
    }

    /// <summary>
    /// Waits until this silo sees membership at <paramref name="version"/> or later, then until every change sent
    /// with an older view has completed (see <see cref="IRouteReplicaGrain.Barrier"/>).
    /// </summary>
    public async Task Barrier(MembershipVersion version)
    {
        if (membership.CurrentSnapshot.Version < version)
        {
            await membership.Refresh(version);
        }

        Task[] pending;
        lock (_inflight)
        {
            // Changes registered from here on read a snapshot at least as new as the one just seen.
            pending = [.. _inflight.Values];
        }

        try
        {
            await Task.WhenAll(pending);
        }
        catch
        {
            // Failures of those changes were handled (and logged) where they were sent; only their end matters here.
        }
    }

    private async Task ForEachSilo<T>(
        T change,
        Func<ClusterMembershipSnapshot, T, HashSet<SiloAddress>?>? onlyTo,
        Func<ReplicaBroadcaster, SiloAddress, ClusterMembershipSnapshot, T, Task> sendTo,
        string kind = "all")
    {
        long id;
        ClusterMembershipSnapshot view;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_inflight)
        {
            // Registering and reading the membership view under one lock is what makes Barrier sound. The calls start
            // after the lock: starting a grain call can run the callee inline, which must not happen under a lock
            // every session on this silo takes.
            id = ++_nextId;
            _inflight[id] = done.Task;
            view = membership.CurrentSnapshot;
        }

        try
        {
            var tasks = new List<Task>(view.Members.Count);
            var targets = onlyTo?.Invoke(view, change);
            foreach (var member in view.Members.Values)
            {
                // Without targets every active silo gets the change. This silo always does: the session reads its own
                // routes here (and, as the silo it is active on, holds them).
                if (member.Status == SiloStatus.Active
                    && (targets is null || targets.Contains(member.SiloAddress) || member.SiloAddress.Equals(localSilo.SiloAddress)))
                {
                    tasks.Add(sendTo(this, member.SiloAddress, view, change));
                }
            }

            if (change is ClientRoutes or RoutesChange)
            {
                metrics.ReplicaWrites.Add(tasks.Count, new KeyValuePair<string, object?>("kind", targets is null ? "all" : kind));
            }

            await Task.WhenAll(tasks);
        }
        finally
        {
            lock (_inflight)
            {
                _inflight.Remove(id);
            }

            done.SetResult();
        }
    }

    private Task ApplyTo<T>(SiloAddress silo, Func<IRouteReplicaGrain, T, Task> action, Func<ReplicaWriter, T, Task> local, T change) =>
        RetryAsync(
            (Broadcaster: this, Logger: logger, Silo: silo, Replica: silo.Equals(localSilo.SiloAddress) ? null : replicaRefs.Get(silo.ToParsableString()),
                Here: localReplica, Action: action, Local: local, Change: change),
            static c => c.Replica is null ? c.Local(c.Here, c.Change) : c.Action(c.Replica, c.Change),

            // Gone: when it comes back it catches up from a peer, so nothing is owed to it.
            static c => c.Broadcaster.IsActive(c.Silo),
            static (c, ex, attempt) => LogGaveUp(c.Logger, ex, c.Silo, attempt),
            static (c, ex, attempt) => LogRetrying(c.Logger, c.Silo, attempt, ex.GetType().Name));

    // Makes a call until it succeeds, nothing is owed any more (stillOwed, asked after each failure and each pause), or
    // it has failed for GiveUpAfter (counted in mqtt.replica.apply_failures, left to the repair that covers it). The
    // callbacks are static and take the call's state: this runs for every silo of every change.
    private async Task RetryAsync<T>(T state, Func<T, Task> call, Func<T, bool>? stillOwed, Action<T, Exception, int> gaveUp, Action<T, Exception, int> retrying)
    {
        var started = timeProvider.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await call(state);
                return;
            }
            catch (Exception ex)
            {
                if (stillOwed?.Invoke(state) == false)
                {
                    return;
                }

                if (timeProvider.GetElapsedTime(started) > GiveUpAfter)
                {
                    metrics.ReplicaApplyFailures.Add(1);
                    gaveUp(state, ex, attempt);
                    return;
                }

                retrying(state, ex, attempt);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 50 * attempt)));
                if (stillOwed?.Invoke(state) == false)
                {
                    return;
                }
            }
        }
    }

    private bool IsActive(SiloAddress silo) =>
        membership.CurrentSnapshot.Members.TryGetValue(silo, out var member) && member.Status == SiloStatus.Active;

    // A version of a client's routes being written, with the silos that hold some of it (RouteHolders.Holds) in the
    // view it is written with, the shards of the exact filters it adds, changes or removes, or of all of them when only
    // the connection changed to a new one (null: none, or none that needs its shard grain told) and those of them whose
    // first holder answered that the shard's activation runs there. The calls to the silos are started one after the
    // other, so the cache needs no lock; their answers come in any order.
    private sealed class RoutesChange(ClientRoutes routes, RouteHolders holders, RoutesWithCopy? withCopy, HashSet<int>? changed)
    {
        private readonly HashSet<int> _served = [];
        private ClusterMembershipSnapshot? _view;
        private HashSet<SiloAddress>? _holders;

        public ClientRoutes Routes => routes;

        public RoutesWithCopy? WithCopy => withCopy;

        /// <summary>The silos holding some of the routes in <paramref name="view"/>; null: every silo (a wildcard filter).</summary>
        public HashSet<SiloAddress>? HoldersIn(ClusterMembershipSnapshot view)
        {
            if (!ReferenceEquals(view, _view))
            {
                _holders = holders.PresenceHoldersOf(view, routes);
                _view = view;
            }

            return _holders;
        }

        /// <summary>The changed shards whose first holder in <paramref name="view"/> is <paramref name="silo"/>, or null.</summary>
        public int[]? FirstHeldBy(ClusterMembershipSnapshot view, SiloAddress silo)
        {
            List<int>? first = null;
            if (changed is not null)
            {
                foreach (var shard in changed)
                {
                    if (holders.HoldersOf(view, shard) is [var holder, ..] && holder.Equals(silo))
                    {
                        (first ??= []).Add(shard);
                    }
                }
            }

            return first?.ToArray();
        }

        /// <summary>Shards a silo written with their part reported an activation of serving, with the change applied.</summary>
        public void Served(int[] shards)
        {
            lock (_served)
            {
                _served.UnionWith(shards);
            }
        }

        /// <summary>The changed shards no silo reported an activation of; null when none.</summary>
        public HashSet<int>? Unserved()
        {
            if (changed is null)
            {
                return null;
            }

            lock (_served)
            {
                changed.ExceptWith(_served);
            }

            return changed.Count == 0 ? null : changed;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Route change to the activation of topic shard {Shard} failed (attempt {Attempt}: {Error}); retrying")]
    private static partial void LogShardRetrying(ILogger logger, int shard, int attempt, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Route change to the activation of topic shard {Shard} still failing after {Attempts} attempts; its holders have it")]
    private static partial void LogShardGaveUp(ILogger logger, Exception ex, int shard, int attempts);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading the routes of client {ClientId} from a peer's replica failed; rebuilding from the parts the others hold")]
    private static partial void LogReadFailed(ILogger logger, Exception ex, string clientId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Replica change to silo {Silo} failed (attempt {Attempt}: {Error}); retrying while it is active")]
    private static partial void LogRetrying(ILogger logger, SiloAddress silo, int attempt, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Replica change to silo {Silo} still failing after {Attempts} attempts; left to the digest repair")]
    private static partial void LogGaveUp(ILogger logger, Exception ex, SiloAddress silo, int attempts);
}
