using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// A session a published message matched, with the options merged over all of its matching subscriptions; for a
/// shared subscription, the one member chosen for this message and the subscription's full <c>$share/…</c> filter.
/// </summary>
internal readonly record struct SessionMatch(ClientRoutes Client, byte Qos, bool RetainAsPublished, uint[]? SubscriptionIds, string? ShareKey = null);

/// <summary>
/// The silo-local replica of every client's routes and of the retained messages. Fed by <see cref="RouteReplicaGrain"/>;
/// read by the topic shards of this silo. Thread-safe: writers take an exclusive lock, matching a shared one.
/// </summary>
internal sealed class RouteTable
{
    private readonly ReaderWriterLockSlim _lock = new(LockRecursionPolicy.NoRecursion);
    private readonly TopicIndex<RouteEntry> _index = new(RouteEntryComparer.Instance);
    private readonly Dictionary<string, ClientRoutes> _clients = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RetainedUpdate> _retained = new(StringComparer.Ordinal);
    private readonly SortedSet<(DateTime At, string ClientId)> _sweepQueue = [];
    private readonly Dictionary<string, List<RouteEntry>> _shareMembers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StrongBox<int>> _shareCursors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tombstone> _clientTombstones = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tombstone> _retainedTombstones = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _gatewayConnections = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Buckets of the digest: the client ids and the retained topics are each hashed into this many.</summary>
    public const int DigestBuckets = 256;

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

    /// <summary>Retained messages held.</summary>
    public long RetainedCount => _retained.Count;

    /// <summary>Applies a client's routes when newer than the held version. Returns false for a stale or repeated version.</summary>
    public bool Apply(ClientRoutes routes) => Apply(routes, out _);

    /// <summary>
    /// As <see cref="Apply(ClientRoutes)"/>; <paramref name="replacedPersistent"/> tells whether the routes it replaced
    /// were those of a persistent session (false when it replaced none, or a tombstone).
    /// </summary>
    public bool Apply(ClientRoutes routes, out bool replacedPersistent)
    {
        replacedPersistent = false;
        _lock.EnterWriteLock();
        try
        {
            if (_clientTombstones.TryGetValue(routes.ClientId, out var tombstone))
            {
                if (tombstone.Version >= routes.Version)
                {
                    return false;
                }

                _clientTombstones.Remove(routes.ClientId);
            }

            if (_clients.TryGetValue(routes.ClientId, out var old))
            {
                if (old.Version >= routes.Version)
                {
                    return false;
                }

                replacedPersistent = old.Persistent;
                foreach (var s in old.Subscriptions)
                {
                    RemoveEntry(RouteEntry.For(routes.ClientId, s));
                }

                if (old.Presence is { } oldPresence && --CollectionsMarshal.GetValueRefOrNullRef(_gatewayConnections, oldPresence.GatewayId) == 0)
                {
                    _gatewayConnections.Remove(oldPresence.GatewayId);
                }

                if (old.SweepAtUtc is { } oldSweep)
                {
                    _sweepQueue.Remove((oldSweep, routes.ClientId));
                }
            }

            if (routes.Subscriptions.Length == 0 && routes.Presence is null && !routes.Persistent)
            {
                // Nothing left to route to: the session ended. The tombstone keeps its version for a while, so a late
                // older update (or a peer that missed the end) cannot bring the routes back.
                _clients.Remove(routes.ClientId);
                _clientTombstones[routes.ClientId] = new Tombstone(routes.Version, DateTime.UtcNow);
                return true;
            }

            _clients[routes.ClientId] = routes;
            if (routes.Presence is { } presence)
            {
                CollectionsMarshal.GetValueRefOrAddDefault(_gatewayConnections, presence.GatewayId, out _)++;
            }
            if (routes.SweepAtUtc is { } sweep)
            {
                _sweepQueue.Add((sweep, routes.ClientId));
            }

            foreach (var s in routes.Subscriptions)
            {
                AddEntry(RouteEntry.For(routes.ClientId, s));
            }

            return true;
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    /// <summary>Appends the clients whose sweep time has come (a delayed will is due or the session expires).</summary>
    public void CollectDueForSweep(DateTime nowUtc, List<string> clientIds, int max)
    {
        _lock.EnterReadLock();
        try
        {
            foreach (var (at, clientId) in _sweepQueue)
            {
                if (at > nowUtc || clientIds.Count >= max)
                {
                    return;
                }

                clientIds.Add(clientId);
            }
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    /// <summary>Returns the routes held for a client, or null.</summary>
    public ClientRoutes? Get(string clientId)
    {
        _lock.EnterReadLock();
        try
        {
            return _clients.GetValueOrDefault(clientId);
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    /// <summary>
    /// Finds the sessions a message goes to: one result per session, with the highest granted QoS of its matching
    /// subscriptions and all of their subscription identifiers (MQTT 5 overlapping subscriptions).
    /// </summary>
    public void Match(MqttMessage message, List<SessionMatch> results)
    {
        var entries = new List<RouteEntry>();
        _lock.EnterReadLock();
        try
        {
            _index.Match(message.Topic, entries);
            if (entries.Count == 0)
            {
                return;
            }

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
                    if (ChooseShareMember(shareKey, members, exclude: null) is { } chosen)
                    {
                        results.Add(ToShareMatch(chosen, message.Qos));
                    }
                }
            }
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    /// <summary>
    /// Chooses another member of a shared subscription for messages of a member whose session ended (QoS 1/2
    /// messages of a share group are not lost with one member). Null when no other member is left.
    /// </summary>
    public SessionMatch? ChooseOtherShareMember(string shareKey, string leavingClientId, byte messageQos)
    {
        _lock.EnterReadLock();
        try
        {
            return _shareMembers.TryGetValue(shareKey, out var members) && ChooseShareMember(shareKey, members, leavingClientId) is { } chosen
                ? ToShareMatch(chosen, messageQos)
                : null;
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    /// <summary>Applies a retained change when newer than the held version.</summary>
    public bool ApplyRetained(RetainedUpdate update)
    {
        _lock.EnterWriteLock();
        try
        {
            if ((_retained.TryGetValue(update.Topic, out var old) && old.Version >= update.Version)
                || (_retainedTombstones.TryGetValue(update.Topic, out var tombstone) && tombstone.Version >= update.Version))
            {
                return false;
            }

            if (update.Message is null)
            {
                _retained.Remove(update.Topic);
                _retainedTombstones[update.Topic] = new Tombstone(update.Version, DateTime.UtcNow);
            }
            else
            {
                _retained[update.Topic] = update;
                _retainedTombstones.Remove(update.Topic);
            }

            return true;
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    /// <summary>The version of the retained message of a topic, or 0.</summary>
    public long RetainedVersion(string topic)
    {
        _lock.EnterReadLock();
        try
        {
            return _retained.TryGetValue(topic, out var u) ? u.Version
                : _retainedTombstones.TryGetValue(topic, out var tombstone) ? tombstone.Version : 0;
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    /// <summary>Appends the retained messages whose topic matches <paramref name="filter"/>.</summary>
    public void MatchRetained(string filter, List<MqttMessage> results)
    {
        _lock.EnterReadLock();
        try
        {
            if (filter.AsSpan().IndexOfAny('+', '#') < 0)
            {
                if (_retained.TryGetValue(filter, out var exact) && exact.Message is not null && !exact.Message.IsExpired(DateTime.UtcNow))
                {
                    results.Add(exact.Message);
                }

                return;
            }

            // A scan: fine for the retained counts of one node today; a retained trie is the next step at scale.
            var now = DateTime.UtcNow;
            foreach (var (topic, update) in _retained)
            {
                if (update.Message is not null && !update.Message.IsExpired(now) && MqttTopic.Matches(filter, topic))
                {
                    results.Add(update.Message);
                }
            }
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    /// <summary>The digest bucket of a client id or retained topic.</summary>
    public static int BucketOf(string key) => MqttTopic.ShardOf(key, DigestBuckets);

    /// <summary>
    /// A digest of everything held: per bucket, a sum of hashes of (client id, version) — first
    /// <see cref="DigestBuckets"/> entries — and of (topic, version) of the retained messages — the next ones.
    /// Two replicas that hold the same versions have the same digest; a differing bucket names what to repair.
    /// Deletions are not in the digest (their tombstones expire at different times on different silos), but the
    /// entries they removed are, so a missed deletion still shows.
    /// </summary>
    public long[] Digest()
    {
        var digest = new long[DigestBuckets * 2];
        _lock.EnterReadLock();
        try
        {
            foreach (var (clientId, routes) in _clients)
            {
                digest[BucketOf(clientId)] += DigestHash(clientId, routes.Version);
            }

            foreach (var (topic, update) in _retained)
            {
                digest[DigestBuckets + BucketOf(topic)] += DigestHash(topic, update.Version);
            }
        }
        finally
        {
            _lock.ExitReadLock();
        }

        return digest;
    }

    /// <summary>
    /// Copies what the table holds in the given digest buckets (all when null), deletions included (as routes with
    /// nothing in them and as retained updates without a message), for a peer to catch up or repair from.
    /// </summary>
    public (List<ClientRoutes> Routes, List<RetainedUpdate> Retained) Read(ISet<int>? buckets)
    {
        var routes = new List<ClientRoutes>();
        var retained = new List<RetainedUpdate>();
        _lock.EnterReadLock();
        try
        {
            foreach (var (clientId, r) in _clients)
            {
                if (buckets is null || buckets.Contains(BucketOf(clientId)))
                {
                    routes.Add(r);
                }
            }

            foreach (var (clientId, tombstone) in _clientTombstones)
            {
                if (buckets is null || buckets.Contains(BucketOf(clientId)))
                {
                    routes.Add(new ClientRoutes(clientId, tombstone.Version, [], false, null));
                }
            }

            foreach (var (topic, update) in _retained)
            {
                if (buckets is null || buckets.Contains(DigestBuckets + BucketOf(topic)))
                {
                    retained.Add(update);
                }
            }

            foreach (var (topic, tombstone) in _retainedTombstones)
            {
                if (buckets is null || buckets.Contains(DigestBuckets + BucketOf(topic)))
                {
                    retained.Add(new RetainedUpdate(topic, tombstone.Version, null));
                }
            }
        }
        finally
        {
            _lock.ExitReadLock();
        }

        return (routes, retained);
    }

    /// <summary>Forgets deletions older than <paramref name="olderThanUtc"/>; returns how many.</summary>
    public int PurgeTombstones(DateTime olderThanUtc)
    {
        _lock.EnterWriteLock();
        try
        {
            return Purge(_clientTombstones, olderThanUtc) + Purge(_retainedTombstones, olderThanUtc);
        }
        finally
        {
            _lock.ExitWriteLock();
        }

        static int Purge(Dictionary<string, Tombstone> tombstones, DateTime olderThanUtc)
        {
            var purged = 0;
            foreach (var (key, tombstone) in tombstones)
            {
                if (tombstone.AtUtc < olderThanUtc && tombstones.Remove(key))
                {
                    purged++;
                }
            }

            return purged;
        }
    }

    /// <summary>Appends the clients connected through <paramref name="gatewayId"/> with their connection ids.</summary>
    public void CollectConnectedThrough(string gatewayId, List<(string ClientId, long ConnectionId)> results)
    {
        _lock.EnterReadLock();
        try
        {
            foreach (var (clientId, routes) in _clients)
            {
                if (routes.Presence is { } p && p.GatewayId == gatewayId)
                {
                    results.Add((clientId, p.ConnectionId));
                }
            }
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    /// <summary>Appends the ids of the gateways that hold connections, as the replica knows them.</summary>
    public void CollectGateways(HashSet<string> gatewayIds)
    {
        _lock.EnterReadLock();
        try
        {
            foreach (var gatewayId in _gatewayConnections.Keys)
            {
                gatewayIds.Add(gatewayId);
            }
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    private static long DigestHash(string key, long version)
    {
        // FNV-1a over the key, mixed with the version through a SplitMix64 finaliser.
        var h = 14695981039346656037UL;
        foreach (var c in key)
        {
            h = (h ^ c) * 1099511628211UL;
        }

        h ^= (ulong)version * 0x9E3779B97F4A7C15UL;
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9UL;
        h = (h ^ (h >> 27)) * 0x94D049BB133111EBUL;
        return (long)(h ^ (h >> 31));
    }

    private void AddEntry(RouteEntry entry)
    {
        _index.Add(entry.IndexFilter, entry);
        if (entry.ShareKey is { } shareKey)
        {
            if (!_shareMembers.TryGetValue(shareKey, out var members))
            {
                _shareMembers[shareKey] = members = [];
            }

            members.Add(entry);
        }
    }

    private void RemoveEntry(RouteEntry entry)
    {
        _index.Remove(entry.IndexFilter, entry);
        if (entry.ShareKey is { } shareKey && _shareMembers.TryGetValue(shareKey, out var members))
        {
            members.RemoveAll(m => m.ClientId == entry.ClientId);
            if (members.Count == 0)
            {
                _shareMembers.Remove(shareKey);
                _shareCursors.TryRemove(shareKey, out _);
            }
        }
    }

    /// <summary>
    /// Round robin over the members of a share group, preferring connected members so that messages are not
    /// parked with an offline persistent member while another member could take them. Called under the read lock.
    /// </summary>
    private RouteEntry? ChooseShareMember(string shareKey, List<RouteEntry> members, string? exclude)
    {
        var online = 0;
        var eligible = 0;
        foreach (var m in members)
        {
            if (m.ClientId != exclude && _clients.TryGetValue(m.ClientId, out var c))
            {
                eligible++;
                if (c.Presence is not null)
                {
                    online++;
                }
            }
        }

        if (eligible == 0)
        {
            return null;
        }

        var cursor = _shareCursors.GetOrAdd(shareKey, static _ => new StrongBox<int>());
        var pick = (int)((uint)Interlocked.Increment(ref cursor.Value) % (uint)(online > 0 ? online : eligible));
        foreach (var m in members)
        {
            if (m.ClientId == exclude || !_clients.TryGetValue(m.ClientId, out var c) || (online > 0 && c.Presence is null))
            {
                continue;
            }

            if (pick-- == 0)
            {
                return m;
            }
        }

        return null;
    }

    private SessionMatch ToShareMatch(RouteEntry member, byte messageQos)
    {
        var sub = member.Subscription;
        var ids = sub.SubscriptionId == 0 ? null : new[] { sub.SubscriptionId };
        return new SessionMatch(_clients[member.ClientId], Math.Min(sub.Qos, messageQos), sub.RetainAsPublished, ids, member.ShareKey);
    }

    /// <summary>A deletion remembered with its version and when it happened.</summary>
    private readonly record struct Tombstone(long Version, DateTime AtUtc);

    /// <summary>A subscription in the index; a shared one is indexed by its topic filter and keyed by its full filter.</summary>
    private sealed record RouteEntry(string ClientId, Subscription Subscription, string IndexFilter, string? ShareKey)
    {
        public static RouteEntry For(string clientId, Subscription subscription) =>
            SharedSubscription.TryParse(subscription.Filter, out _, out var topicFilter)
                ? new RouteEntry(clientId, subscription, topicFilter, subscription.Filter)
                : new RouteEntry(clientId, subscription, subscription.Filter, null);
    }

    private sealed class RouteEntryComparer : IEqualityComparer<RouteEntry>
    {
        public static readonly RouteEntryComparer Instance = new();

        public bool Equals(RouteEntry? x, RouteEntry? y) =>
            ReferenceEquals(x, y) || (x is not null && y is not null && x.ClientId == y.ClientId && x.Subscription.Filter == y.Subscription.Filter);

        public int GetHashCode(RouteEntry obj) => HashCode.Combine(obj.ClientId, obj.Subscription.Filter);
    }
}
