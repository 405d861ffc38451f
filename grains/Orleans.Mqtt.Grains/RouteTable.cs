using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Grains;

/// <summary>A session a published message matched, with the options merged over all of its matching subscriptions.</summary>
internal readonly record struct SessionMatch(ClientRoutes Client, byte Qos, bool RetainAsPublished, uint[]? SubscriptionIds);

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

    /// <summary>Clients known (connected, or with a persistent session).</summary>
    public long ClientCount => _clients.Count;

    /// <summary>Subscriptions in the index.</summary>
    public long SubscriptionCount => _index.Count;

    /// <summary>Retained messages held.</summary>
    public long RetainedCount => _retained.Count;

    /// <summary>Applies a client's routes when newer than the held version. Returns false for a stale or repeated version.</summary>
    public bool Apply(ClientRoutes routes)
    {
        _lock.EnterWriteLock();
        try
        {
            if (_clients.TryGetValue(routes.ClientId, out var old))
            {
                if (old.Version >= routes.Version)
                {
                    return false;
                }

                foreach (var s in old.Subscriptions)
                {
                    _index.Remove(s.Filter, new RouteEntry(routes.ClientId, s));
                }
            }

            if (routes.Subscriptions.Length == 0 && routes.Presence is null && !routes.Persistent)
            {
                // Nothing left to route to: the session ended. Versions come from a clock that moves forward across
                // activations, so no tombstone is needed for a late older update of the same grain.
                _clients.Remove(routes.ClientId);
                return true;
            }

            _clients[routes.ClientId] = routes;
            foreach (var s in routes.Subscriptions)
            {
                _index.Add(s.Filter, new RouteEntry(routes.ClientId, s));
            }

            return true;
        }
        finally
        {
            _lock.ExitWriteLock();
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

            var i = 0;
            while (i < entries.Count)
            {
                var clientId = entries[i].ClientId;
                var qos = -1;
                var rap = false;
                List<uint>? ids = null;
                for (; i < entries.Count && entries[i].ClientId == clientId; i++)
                {
                    var sub = entries[i].Subscription;
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
            if (_retained.TryGetValue(update.Topic, out var old) && old.Version >= update.Version)
            {
                return false;
            }

            if (update.Message is null)
            {
                _retained.Remove(update.Topic);
            }
            else
            {
                _retained[update.Topic] = update;
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
            return _retained.TryGetValue(topic, out var u) ? u.Version : 0;
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
                if (_retained.TryGetValue(filter, out var exact) && exact.Message is not null)
                {
                    results.Add(exact.Message);
                }

                return;
            }

            // A scan: fine for the retained counts of one node today; a retained trie is the next step at scale.
            foreach (var (topic, update) in _retained)
            {
                if (update.Message is not null && MqttTopic.Matches(filter, topic))
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

    private sealed record RouteEntry(string ClientId, Subscription Subscription);

    private sealed class RouteEntryComparer : IEqualityComparer<RouteEntry>
    {
        public static readonly RouteEntryComparer Instance = new();

        public bool Equals(RouteEntry? x, RouteEntry? y) =>
            ReferenceEquals(x, y) || (x is not null && y is not null && x.ClientId == y.ClientId && x.Subscription.Filter == y.Subscription.Filter);

        public int GetHashCode(RouteEntry obj) => HashCode.Combine(obj.ClientId, obj.Subscription.Filter);
    }
}
