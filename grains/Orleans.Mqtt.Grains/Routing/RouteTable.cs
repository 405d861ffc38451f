using System.Runtime.InteropServices;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// The silo-local replica of every client's routes and of the retained messages. Fed by <see cref="RouteReplicaGrain"/>;
/// read by the topic shards and sessions of this silo. The routes (the clients, the route index, the share groups, the
/// deletions and the sweep schedule) change together under one lock: writers take it exclusively, matching shares it,
/// so a reader never sees a client's routes half replaced. The retained messages are a <see cref="RetainedStore"/>
/// with a lock of its own: nothing changes routes and retained messages at once.
/// </summary>
internal sealed class RouteTable(TimeProvider timeProvider)
{
    // Per thread, because matching runs on many threads at once under the shared lock; it never awaits, so a thread's
    // list is free again when Match returns. Saves a list per published message.
    [ThreadStatic]
    private static List<RouteEntry>? t_entries;

    private readonly ReaderWriterLockSlim _lock = new(LockRecursionPolicy.NoRecursion);
    private readonly TopicIndex<RouteEntry> _index = new(RouteEntry.SameRoute);
    private readonly Dictionary<string, ClientRoutes> _clients = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _gatewayConnections = new(StringComparer.Ordinal);
    private readonly GatewayPresences _presences = new();
    private readonly ShareGroups _shareGroups = new();
    private readonly Tombstones _clientTombstones = new();
    private readonly SweepSchedule _sweep = new();
    private readonly RetainedStore _retained = new(timeProvider);
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _exactCount;

    /// <summary>A table on the system clock.</summary>
    public RouteTable()
        : this(TimeProvider.System)
    {
    }

    /// <summary>Buckets of the digest: the client ids and the retained topics are each hashed into this many.</summary>
    public const int DigestBuckets = ReplicaDigest.Buckets;

    /// <summary>
    /// Completes once the table holds the whole cluster's routes: loaded from disk and caught up from a peer.
    /// Matching before that could miss subscriptions made while this silo was away.
    /// </summary>
    public Task Ready => _ready.Task;

    /// <summary>Whether <see cref="Ready"/> has completed.</summary>
    public bool IsReady => _ready.Task.IsCompleted;

    /// <summary>Marks the table complete (see <see cref="Ready"/>).</summary>
    public void MarkReady() => _ready.TrySetResult();

    /// <summary>Clients known (connected, or with a persistent session).</summary>
    public long ClientCount => _clients.Count;

    /// <summary>Subscriptions in the index.</summary>
    public long SubscriptionCount => _index.Count;

    /// <summary>
    /// Of <see cref="SubscriptionCount"/>, those without wildcards: with routes sharded by topic, the ones of the topic
    /// shards this silo holds (each is held by <c>Mqtt:Routes:Copies</c> silos), while every silo holds every other.
    /// </summary>
    public long ExactSubscriptionCount => Volatile.Read(ref _exactCount);

    /// <summary>Retained messages held.</summary>
    public long RetainedCount => _retained.Count;

    /// <summary>Applies a client's routes when newer than the held version. Returns false for a stale or repeated version.</summary>
    public bool Apply(ClientRoutes routes) => Apply(routes, out _);

    /// <summary>
    /// <paramref name="presence"/> sharing its gateway's observer reference and id with the other presences the table
    /// holds (<see cref="GatewayPresences"/>): a session takes its connection's presence through this, so that the
    /// routes it replicates to this silo are held as they are.
    /// </summary>
    public GatewayPresence Intern(GatewayPresence presence) => _presences.Intern(presence);

    /// <summary>
    /// As <see cref="Apply(ClientRoutes)"/>; <paramref name="replacedPersistent"/> tells whether the routes it replaced
    /// were those of a persistent session (false when it replaced none, or a tombstone).
    /// </summary>
    public bool Apply(ClientRoutes routes, out bool replacedPersistent) => Apply(routes, out replacedPersistent, out _);

    /// <summary>
    /// As <see cref="Apply(ClientRoutes, out bool)"/>; <paramref name="held"/> is what the table holds for the client
    /// afterwards when it changed. Routes sharded by topic arrive in parts: a part of the version held adds the
    /// subscriptions the table lacks (a shard this silo came to hold, caught up from a peer), so parts of one version
    /// merge in any order and a repeated part changes nothing.
    /// </summary>
    public bool Apply(ClientRoutes routes, out bool replacedPersistent, out ClientRoutes held)
    {
        replacedPersistent = false;
        if (routes.Presence is { } presence && _presences.Intern(presence) is var shared && !ReferenceEquals(shared, presence))
        {
            routes = routes with { Presence = shared };
        }

        held = routes;
        using (_lock.Write())
        {
            if (_clientTombstones.Covers(routes.ClientId, routes.Version))
            {
                return false;
            }

            _clientTombstones.Remove(routes.ClientId);
            if (_clients.TryGetValue(routes.ClientId, out var old))
            {
                if (old.Version == routes.Version && (MergeParts(old, routes) ?? AddPresence(old, routes)) is { } merged)
                {
                    routes = held = merged;
                }
                else if (old.Version >= routes.Version)
                {
                    return false;
                }

                replacedPersistent = old.Persistent;
                Unindex(old);
            }

            if (routes.Subscriptions.Length == 0 && routes.Presence is null && !routes.Persistent)
            {
                // Nothing left to route to: the session ended. The tombstone keeps its version for a while, so a late
                // older update (or a peer that missed the end) cannot bring the routes back.
                _clients.Remove(routes.ClientId);
                _clientTombstones.Add(routes.ClientId, routes.Version, timeProvider.GetUtcNow().UtcDateTime);
                return true;
            }

            _clients[routes.ClientId] = routes;
            Index(routes);
            return true;
        }
    }

    // Two parts of one version of a client's routes: the union of their subscriptions, or null when the held part
    // already has every subscription of the other. Whole routes (no SubscriptionTotal) of one version are the same
    // routes: only a part can lack something.
    private static ClientRoutes? MergeParts(ClientRoutes held, ClientRoutes part)
    {
        if (held.SubscriptionTotal is null)
        {
            return null;
        }

        List<Subscription>? added = null;
        foreach (var s in part.Subscriptions)
        {
            if (Array.FindIndex(held.Subscriptions, h => h.Filter == s.Filter) < 0)
            {
                (added ??= []).Add(s);
            }
        }

        if (added is null)
        {
            return null;
        }

        Subscription[] merged = [.. held.Subscriptions, .. added];
        return held with
        {
            Subscriptions = merged,
            SubscriptionTotal = merged.Length >= held.SubscriptionTotal ? null : held.SubscriptionTotal,
            Presence = held.Presence ?? part.Presence,
        };
    }

    // One version of a client's routes held without its presence (read back from the durable replica, which never
    // stores one) and the same version with it (a peer's copy, read while catching up): the live connection is added.
    // Without it, a connected client's session that fails over to this silo would take the client for offline and
    // queue its messages while the client waits on its open connection.
    private static ClientRoutes? AddPresence(ClientRoutes held, ClientRoutes other) =>
        held.Presence is null && other.Presence is not null ? held with { Presence = other.Presence } : null;

    /// <summary>
    /// Drops the exact subscriptions of the shards this silo no longer holds (<paramref name="held"/>, see
    /// <see cref="RouteHolders"/>): their routes went to other silos with a membership change. Returns how many.
    /// Nothing is written to disk: the durable replica keeps them until the client's next change, and a restart
    /// prunes again.
    /// </summary>
    public int Prune(RouteHolders holders, bool[] held)
    {
        var pruned = 0;
        using (_lock.Write())
        {
            List<ClientRoutes>? changed = null;
            foreach (var routes in _clients.Values)
            {
                var part = holders.PartFor(routes, held);
                if (!ReferenceEquals(part, routes))
                {
                    (changed ??= []).Add(part);
                }
            }

            if (changed is not null)
            {
                foreach (var part in changed)
                {
                    var old = _clients[part.ClientId];
                    pruned += old.Subscriptions.Length - part.Subscriptions.Length;
                    Unindex(old);
                    _clients[part.ClientId] = part;
                    Index(part);
                }
            }
        }

        return pruned;
    }

    /// <summary>
    /// Forgets a client's routes this silo no longer holds (routes sharded by topic: a change at
    /// <paramref name="version"/> left it none of them, <see cref="RouteHolders.Holds"/>), unless it holds a newer
    /// version. No tombstone: the client lives on elsewhere, and this silo may come to hold it again. Returns whether
    /// routes were forgotten; <paramref name="wasPersistent"/> whether they were a persistent session's (stored on disk).
    /// With <paramref name="served"/>, the part it gives of the held routes stays when it has filters: the exact filters of
    /// shards a shard grain activation on this silo still serves (<see cref="RouteHolders.ServedPart"/>).
    /// </summary>
    public bool Drop(string clientId, long version, out bool wasPersistent, Func<ClientRoutes, ClientRoutes>? served = null)
    {
        wasPersistent = false;
        using (_lock.Write())
        {
            if (!_clients.TryGetValue(clientId, out var old) || old.Version > version)
            {
                return false;
            }

            if (served?.Invoke(old) is { Subscriptions.Length: > 0 } kept)
            {
                Unindex(old);
                _clients[clientId] = kept;
                Index(kept);
                return false;
            }

            wasPersistent = old.Persistent;
            Unindex(old);
            _clients.Remove(clientId);
            return true;
        }
    }

    /// <summary>
    /// Forgets the clients <paramref name="holds"/> says this silo no longer holds any of (routes sharded by topic: the
    /// active silos changed, and with them the entry holders), adding the ids of those that were persistent sessions to
    /// <paramref name="droppedPersistent"/> (their durable copy goes too). Returns how many were forgotten.
    /// </summary>
    public int PruneEntries(Func<ClientRoutes, bool> holds, List<string> droppedPersistent)
    {
        using (_lock.Write())
        {
            List<ClientRoutes>? dropped = null;
            foreach (var routes in _clients.Values)
            {
                if (!holds(routes))
                {
                    (dropped ??= []).Add(routes);
                }
            }

            if (dropped is null)
            {
                return 0;
            }

            foreach (var routes in dropped)
            {
                Unindex(routes);
                _clients.Remove(routes.ClientId);
                if (routes.Persistent)
                {
                    droppedPersistent.Add(routes.ClientId);
                }
            }

            return dropped.Count;
        }
    }

    /// <summary>Appends the clients whose sweep time has come (a delayed will is due or the session expires).</summary>
    public void CollectDueForSweep(DateTime nowUtc, List<string> clientIds, int max)
    {
        using (_lock.Read())
        {
            _sweep.CollectDue(nowUtc, clientIds, max);
        }
    }

    /// <summary>
    /// As <see cref="CollectDueForSweep(DateTime, List{string}, int)"/>, for the clients whose routes
    /// <paramref name="mine"/> accepts (routes sharded by topic: those this silo sweeps); due clients it does not accept
    /// are set aside until <see cref="UnparkSweeps"/>, so that an older sweep time this silo holds of a session another
    /// silo sweeps is not looked at every round.
    /// </summary>
    public void CollectDueForSweep(DateTime nowUtc, List<string> clientIds, int max, Func<ClientRoutes, bool> mine)
    {
        using (_lock.Write())
        {
            _sweep.CollectDue(nowUtc, clientIds, max, clientId => _clients.TryGetValue(clientId, out var routes) && mine(routes));
        }
    }

    /// <summary>
    /// Forgets, in this table only and without a new version, that a client is connected through
    /// <paramref name="gatewayId"/> as <paramref name="connectionId"/>: the gateway is dead. For a session another silo
    /// sets offline (routes sharded by topic), whose change of presence this silo may never be sent; otherwise its dead
    /// gateway would stay in <see cref="CollectGateways"/> for good. Returns whether the presence was held.
    /// </summary>
    public bool ForgetPresence(string clientId, string gatewayId, long connectionId)
    {
        using (_lock.Write())
        {
            if (!_clients.TryGetValue(clientId, out var routes) || routes.Presence is not { } p || p.GatewayId != gatewayId || p.ConnectionId != connectionId)
            {
                return false;
            }

            Unindex(routes);
            routes = routes with { Presence = null };
            _clients[clientId] = routes;
            Index(routes);
            return true;
        }
    }

    /// <summary>Puts the clients set aside by the sweep back in its schedule: the active silos changed, and with them who sweeps what.</summary>
    public void UnparkSweeps()
    {
        using (_lock.Write())
        {
            _sweep.Unpark();
        }
    }

    /// <summary>Returns the routes held for a client, or null.</summary>
    public ClientRoutes? Get(string clientId)
    {
        using (_lock.Read())
        {
            return _clients.GetValueOrDefault(clientId);
        }
    }

    /// <summary>
    /// Finds the sessions a message goes to: one result per session, with the highest granted QoS of its matching
    /// subscriptions and all of their subscription identifiers (MQTT 5 overlapping subscriptions).
    /// </summary>
    public void Match(MqttMessage message, List<SessionMatch> results)
    {
        var entries = t_entries ??= [];
        _lock.EnterReadLock();
        try
        {
            _index.Match(message.Topic, entries);
            if (entries.Count > 0)
            {
                Merge(message, entries, results);
            }
        }
        finally
        {
            _lock.ExitReadLock();
            entries.Clear();
        }
    }

    /// <summary>
    /// Chooses another member of a shared subscription for messages of a member whose session ended (QoS 1/2
    /// messages of a share group are not lost with one member). Null when no other member is left.
    /// </summary>
    public SessionMatch? ChooseOtherShareMember(string shareKey, string leavingClientId, byte messageQos)
    {
        using (_lock.Read())
        {
            return _shareGroups.MembersOf(shareKey) is { } members && _shareGroups.Choose(shareKey, members, leavingClientId, _clients) is { } chosen
                ? ToShareMatch(chosen, messageQos)
                : null;
        }
    }

    /// <summary>Applies a retained change when newer than the held version.</summary>
    public bool ApplyRetained(RetainedUpdate update) => _retained.Apply(update);

    /// <summary>The version of the retained message of a topic, or 0.</summary>
    public long RetainedVersion(string topic) => _retained.VersionOf(topic);

    /// <summary>Appends the retained messages whose topic matches <paramref name="filter"/>.</summary>
    public void MatchRetained(string filter, List<MqttMessage> results) => _retained.Match(filter, results);

    /// <summary>The digest bucket of a client id or retained topic.</summary>
    public static int BucketOf(string key) => ReplicaDigest.BucketOf(key);

    /// <summary>
    /// A digest of everything held: per bucket, a sum of hashes of (client id, version) — first
    /// <see cref="DigestBuckets"/> entries — and of (topic, version) of the retained messages — the next ones.
    /// Two replicas that hold the same versions have the same digest; a differing bucket names what to repair.
    /// Deletions are not in the digest (their tombstones expire at different times on different silos), but the
    /// entries they removed are, so a missed deletion still shows.
    /// </summary>
    public long[] Digest() => Digest(null, null);

    /// <summary>
    /// As <see cref="Digest()"/>; with routes sharded by topic (<paramref name="shards"/> not null) it also covers each
    /// subscription the two silos compared should both hold: the wildcard filters and the exact filters of the shards
    /// set in <paramref name="shards"/>, so a part missing on one of them shows as a differing bucket.
    /// </summary>
    public long[] Digest(RouteHolders? holders, bool[]? shards) => Digest(holders, shards, null);

    /// <summary>
    /// As <see cref="Digest(RouteHolders?, bool[])"/>; with <paramref name="bothEntryHolders"/> (routes sharded by topic,
    /// entries placed by client id) only the clients that both silos compared should hold count: those with a wildcard
    /// filter (every silo holds them), those with an exact filter in <paramref name="shards"/>, and those
    /// <paramref name="bothEntryHolders"/> accepts (both are its entry holders). Each of those silos gets every version
    /// of such a client, so its version is compared; the others are not held by both (see <see cref="RouteHolders.Holds"/>).
    /// </summary>
    public long[] Digest(RouteHolders? holders, bool[]? shards, Func<ClientRoutes, bool>? bothEntryHolders)
    {
        var digest = new long[DigestBuckets * 2];
        var sharded = holders is not null && shards is not null;
        using (_lock.Read())
        {
            foreach (var (clientId, routes) in _clients)
            {
                if (sharded && bothEntryHolders is not null && !HeldByBoth(routes, holders!, shards!, bothEntryHolders))
                {
                    continue;
                }

                var hash = ReplicaDigest.Hash(clientId, routes.Version);
                var sum = hash;
                if (sharded)
                {
                    foreach (var s in routes.Subscriptions)
                    {
                        var shard = holders!.ShardOf(s);
                        if (shard < 0 || shards![shard])
                        {
                            sum += ReplicaDigest.Hash(s.Filter, hash);
                        }
                    }
                }

                digest[BucketOf(clientId)] += sum;
            }
        }

        _retained.AddToDigest(digest, DigestBuckets);
        return digest;
    }

    /// <summary>
    /// The clients in <paramref name="buckets"/> that <see cref="Digest(RouteHolders?, bool[], Func{ClientRoutes, bool}?)"/>
    /// counts as held by both silos compared and that are not in <paramref name="received"/> (what the peer sent of
    /// those buckets), at most <paramref name="max"/>: after a repair, those this silo may hold only for want of an
    /// order to forget them.
    /// </summary>
    public List<ClientRoutes> HeldByBoth(
        ISet<int> buckets, RouteHolders holders, bool[]? shards, Func<ClientRoutes, bool>? bothEntryHolders, ISet<string> received, int max)
    {
        var found = new List<ClientRoutes>();
        if (shards is null || bothEntryHolders is null)
        {
            return found;
        }

        using (_lock.Read())
        {
            foreach (var (clientId, routes) in _clients)
            {
                if (found.Count >= max)
                {
                    break;
                }

                if (buckets.Contains(BucketOf(clientId)) && !received.Contains(clientId) && HeldByBoth(routes, holders, shards, bothEntryHolders))
                {
                    found.Add(routes);
                }
            }
        }

        return found;
    }

    // Whether two silos that both hold the shards set in shards both hold a client: it has a wildcard filter or an
    // exact filter of one of those shards, or both are its entry holders.
    private static bool HeldByBoth(ClientRoutes routes, RouteHolders holders, bool[] shards, Func<ClientRoutes, bool> bothEntryHolders)
    {
        foreach (var s in routes.Subscriptions)
        {
            var shard = holders.ShardOf(s);
            if (shard < 0 || shards[shard])
            {
                return true;
            }
        }

        return bothEntryHolders(routes);
    }

    /// <summary>
    /// Copies what the table holds in the given digest buckets (all when null), deletions included (as routes with
    /// nothing in them and as retained updates without a message), for a peer to catch up or repair from.
    /// </summary>
    public (List<ClientRoutes> Routes, List<RetainedUpdate> Retained) Read(ISet<int>? buckets) => Read(buckets, null, null, false);

    /// <summary>
    /// As <see cref="Read(ISet{int})"/>, for a peer that holds the shards set in <paramref name="shards"/> (routes
    /// sharded by topic; null: all): each client's part for that peer. With <paramref name="onlyWithShards"/>, only
    /// the clients with an exact filter in those shards, and no retained messages or deletions: what a peer that
    /// already has every entry from elsewhere still needs from this silo.
    /// </summary>
    public (List<ClientRoutes> Routes, List<RetainedUpdate> Retained) Read(ISet<int>? buckets, RouteHolders? holders, bool[]? shards, bool onlyWithShards) =>
        Read(buckets, holders, shards, onlyWithShards, null);

    /// <summary>
    /// As <see cref="Read(ISet{int}, RouteHolders?, bool[], bool)"/>; with <paramref name="alsoEntries"/> (routes sharded
    /// by topic, for a peer named by the caller), only the clients with an exact filter in <paramref name="shards"/> and
    /// those <paramref name="alsoEntries"/> picks (those the peer is an entry holder of, or, unless
    /// <paramref name="onlyWithShards"/>, with a wildcard filter: <see cref="RouteHolders.Holds"/>), whatever
    /// <paramref name="onlyWithShards"/> says.
    /// </summary>
    public (List<ClientRoutes> Routes, List<RetainedUpdate> Retained) Read(
        ISet<int>? buckets, RouteHolders? holders, bool[]? shards, bool onlyWithShards, Func<ClientRoutes, bool>? alsoEntries)
    {
        var routes = new List<ClientRoutes>();
        var deleted = new List<(string Key, long Version)>();
        Func<string, bool> clientInBuckets = buckets is null ? static _ => true : clientId => buckets.Contains(BucketOf(clientId));
        using (_lock.Read())
        {
            foreach (var (clientId, r) in _clients)
            {
                if (clientInBuckets(clientId))
                {
                    var part = holders is null ? r : holders.PartFor(r, shards);
                    var include = alsoEntries is not null
                        ? HasExact(holders!, part) || alsoEntries(r)
                        : !onlyWithShards || HasExact(holders!, part);
                    if (include)
                    {
                        routes.Add(part);
                    }
                }
            }

            if (onlyWithShards)
            {
                return (routes, []);
            }

            _clientTombstones.Collect(clientInBuckets, deleted);
        }

        foreach (var (clientId, version) in deleted)
        {
            routes.Add(new ClientRoutes(clientId, version, [], false, null));
        }

        var retained = new List<RetainedUpdate>();
        _retained.Read(buckets is null ? static _ => true : topic => buckets.Contains(DigestBuckets + BucketOf(topic)), retained);
        return (routes, retained);
    }

    private static bool HasExact(RouteHolders holders, ClientRoutes routes)
    {
        foreach (var s in routes.Subscriptions)
        {
            if (holders.ShardOf(s) >= 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Forgets deletions older than <paramref name="olderThanUtc"/>; returns how many.</summary>
    public int PurgeTombstones(DateTime olderThanUtc)
    {
        int purged;
        using (_lock.Write())
        {
            purged = _clientTombstones.Purge(olderThanUtc);
        }

        return purged + _retained.PurgeTombstones(olderThanUtc);
    }

    /// <summary>
    /// The page of the clients listed by silo <paramref name="siloName"/> (sessions homed on it, and memory-only sessions
    /// active on it) that match <paramref name="query"/>, in ordinal client-id order after its cursor.
    /// </summary>
    public ClientSummary[] ListClients(string siloName, ClientQuery query) => ListClients(siloName, null, query);

    /// <summary>
    /// As <see cref="ListClients(string, ClientQuery)"/>; with <paramref name="activeSilos"/> (names), a session whose
    /// silo is not among them (lost, its session not yet failed over) is listed by the first active silo of its ranking,
    /// where it fails over (<see cref="SessionShare.Owns"/>), which holds its entry also with routes sharded by topic.
    /// </summary>
    public ClientSummary[] ListClients(string siloName, IReadOnlyList<string>? activeSilos, ClientQuery query)
    {
        var page = new SmallestKeys<ClientRoutes>(query.Limit);
        var share = activeSilos is null ? (SessionShare?)null : new SessionShare(siloName, activeSilos);
        using (_lock.Read())
        {
            foreach (var (clientId, routes) in _clients)
            {
                if ((share is { } s ? s.Owns(clientId, routes.Home ?? routes.ActiveOn) : (routes.Home ?? routes.ActiveOn) == siloName)
                    && (query.After is null || string.CompareOrdinal(clientId, query.After) > 0)
                    && (query.ClientIdPrefix is null || clientId.StartsWith(query.ClientIdPrefix, StringComparison.Ordinal))
                    && (query.UserName is null || routes.UserName == query.UserName)
                    && (query.GatewayId is null || routes.Presence?.GatewayId == query.GatewayId))
                {
                    page.Offer(clientId, routes);
                }
            }
        }

        var kept = page.ToSortedArray();
        var result = new ClientSummary[kept.Length];
        for (var i = 0; i < kept.Length; i++)
        {
            var r = kept[i];
            result[i] = new ClientSummary(r.ClientId, r.Presence is not null, r.Presence?.GatewayId, r.UserName, r.Persistent, r.SubscriptionCount, siloName);
        }

        return result;
    }

    /// <summary>The page of retained messages matching <paramref name="filter"/>, in ordinal topic order after <paramref name="after"/>.</summary>
    public RetainedMessageInfo[] ListRetained(string filter, string? after, int limit) => _retained.List(filter, after, limit);

    /// <summary>Appends the clients connected through <paramref name="gatewayId"/> with their connection ids.</summary>
    public void CollectConnectedThrough(string gatewayId, List<(string ClientId, long ConnectionId)> results)
    {
        using (_lock.Read())
        {
            foreach (var (clientId, routes) in _clients)
            {
                if (routes.Presence is { } p && p.GatewayId == gatewayId)
                {
                    results.Add((clientId, p.ConnectionId));
                }
            }
        }
    }

    /// <summary>
    /// Counts the sessions, and their subscriptions, that the silo named <paramref name="siloName"/> owns among the
    /// active silos <paramref name="activeSilos"/> (names, in any order): see
    /// <see cref="SessionShare.Owns"/>. The active silos' counts add up to the whole table's. Reads every client, under
    /// the shared lock: for figures taken once in a while, not per message.
    /// </summary>
    public (long Sessions, long Subscriptions) CountOwned(string siloName, IReadOnlyList<string> activeSilos)
    {
        var share = new SessionShare(siloName, activeSilos);
        long sessions = 0, subscriptions = 0;
        using (_lock.Read())
        {
            foreach (var (clientId, routes) in _clients)
            {
                if (share.Owns(clientId, routes.Home ?? routes.ActiveOn))
                {
                    sessions++;
                    subscriptions += routes.SubscriptionCount;
                }
            }
        }

        return (sessions, subscriptions);
    }

    /// <summary>Appends the ids of the gateways that hold connections, as the replica knows them.</summary>
    public void CollectGateways(HashSet<string> gatewayIds)
    {
        using (_lock.Read())
        {
            foreach (var gatewayId in _gatewayConnections.Keys)
            {
                gatewayIds.Add(gatewayId);
            }
        }
    }

    // Under the write lock: everything a client's routes put into the index, the share groups, the gateway counts and
    // the sweep schedule.
    private void Index(ClientRoutes routes)
    {
        if (routes.Presence is { } presence && CollectionsMarshal.GetValueRefOrAddDefault(_gatewayConnections, presence.GatewayId, out _)++ == 0)
        {
            _presences.Keep(presence);
        }

        if (routes.SweepAtUtc is { } sweep)
        {
            _sweep.Add(sweep, routes.ClientId);
        }

        foreach (var s in routes.Subscriptions)
        {
            var entry = RouteEntry.For(routes.ClientId, s);
            _exactCount += MqttTopic.HasWildcard(entry.IndexFilter) ? 0 : 1;
            _index.Add(entry.IndexFilter, entry);
            if (entry.ShareKey is not null)
            {
                _shareGroups.Add(entry);
            }
        }
    }


    // Under the write lock: the reverse of Index.
    private void Unindex(ClientRoutes routes)
    {
        foreach (var s in routes.Subscriptions)
        {
            var entry = RouteEntry.For(routes.ClientId, s);
            _exactCount -= MqttTopic.HasWildcard(entry.IndexFilter) ? 0 : 1;
            _index.Remove(entry.IndexFilter, entry);
            if (entry.ShareKey is not null)
            {
                _shareGroups.Remove(entry);
            }
        }

        if (routes.Presence is { } presence && --CollectionsMarshal.GetValueRefOrNullRef(_gatewayConnections, presence.GatewayId) == 0)
        {
            _gatewayConnections.Remove(presence.GatewayId);
            _presences.Forget(presence.GatewayId);
        }

        if (routes.SweepAtUtc is { } sweep)
        {
            _sweep.Remove(sweep, routes.ClientId);
        }
    }

    // Under the read lock: the matched entries grouped by client into one result per session, and one member chosen
    // per share group.
    private void Merge(MqttMessage message, List<RouteEntry> entries, List<SessionMatch> results)
    {
        if (entries.Count > 1)
        {
            entries.Sort(static (a, b) => string.CompareOrdinal(a.ClientId, b.ClientId));
        }

        Dictionary<string, List<RouteEntry>>? shared = null;
        var i = 0;
        while (i < entries.Count)
        {
            var clientId = entries[i].ClientId;
            var qos = -1;
            var rap = false;
            List<uint>? ids = null;
            for (; i < entries.Count && entries[i].ClientId == clientId; i++)
            {
                var entry = entries[i];
                var sub = entry.Subscription;
                if (entry.ShareKey is { } shareKey)
                {
                    shared ??= new Dictionary<string, List<RouteEntry>>(StringComparer.Ordinal);
                    if (!shared.TryGetValue(shareKey, out var members))
                    {
                        shared[shareKey] = members = [];
                    }

                    members.Add(entry);
                    continue;
                }

                if (sub.NoLocal && message.SenderClientId == clientId)
                {
                    continue;
                }

                qos = Math.Max(qos, sub.Qos);
                rap |= sub.RetainAsPublished;
                if (sub.SubscriptionId != 0)
                {
                    (ids ??= []).Add(sub.SubscriptionId);
                }
            }

            if (qos >= 0 && _clients.TryGetValue(clientId, out var client))
            {
                results.Add(new SessionMatch(client, (byte)Math.Min(qos, message.Qos), rap, ids?.ToArray()));
            }
        }

        if (shared is not null)
        {
            foreach (var (shareKey, members) in shared)
            {
                if (_shareGroups.Choose(shareKey, members, exclude: null, _clients) is { } chosen)
                {
                    results.Add(ToShareMatch(chosen, message.Qos));
                }
            }
        }
    }

    private SessionMatch ToShareMatch(RouteEntry member, byte messageQos)
    {
        var sub = member.Subscription;
        var ids = sub.SubscriptionId == 0 ? null : new[] { sub.SubscriptionId };
        return new SessionMatch(_clients[member.ClientId], Math.Min(sub.Qos, messageQos), sub.RetainAsPublished, ids, member.ShareKey);
    }
}
