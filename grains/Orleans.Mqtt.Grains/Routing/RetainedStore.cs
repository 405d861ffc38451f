namespace Orleans.Mqtt.Grains;

/// <summary>
/// The silo-local replica of the retained messages: the latest version of each topic's retained message, the
/// deletions (as tombstones) and a topic index so that a wildcard subscribe visits only the matching topics.
/// Thread-safe, with a lock of its own (separate from the routes', so a retained publish does not hold up matching):
/// writers take it exclusively, readers shared, and a reader never sees a change half applied.
/// </summary>
internal sealed class RetainedStore(TimeProvider timeProvider)
{
    private readonly ReaderWriterLockSlim _lock = new(LockRecursionPolicy.NoRecursion);
    private readonly Dictionary<string, RetainedUpdate> _byTopic = new(StringComparer.Ordinal);
    private readonly RetainedTopicIndex<MqttMessage> _index = new();
    private readonly Tombstones _tombstones = new();

    /// <summary>Retained messages held.</summary>
    public long Count => _byTopic.Count;

    /// <summary>Applies a retained change when newer than the held version (of the message or of its deletion).</summary>
    public bool Apply(RetainedUpdate update)
    {
        using (_lock.Write())
        {
            if ((_byTopic.TryGetValue(update.Topic, out var old) && old.Version >= update.Version) || _tombstones.Covers(update.Topic, update.Version))
            {
                return false;
            }

            if (update.Message is null)
            {
                _byTopic.Remove(update.Topic);
                _index.Remove(update.Topic);
                _tombstones.Add(update.Topic, update.Version, timeProvider.GetUtcNow().UtcDateTime);
            }
            else
            {
                _byTopic[update.Topic] = update;
                _index.Set(update.Topic, update.Message);
                _tombstones.Remove(update.Topic);
            }

            return true;
        }
    }

    /// <summary>The version of the retained message of a topic (or of its deletion), or 0.</summary>
    public long VersionOf(string topic)
    {
        using (_lock.Read())
        {
            return _byTopic.TryGetValue(topic, out var u) ? u.Version : _tombstones.VersionOf(topic);
        }
    }

    /// <summary>Appends the retained messages, not expired, whose topic matches <paramref name="filter"/>.</summary>
    public void Match(string filter, List<MqttMessage> results)
    {
        var now = timeProvider.GetUtcNow().UtcDateTime;
        using (_lock.Read())
        {
            if (!Topics.MqttTopic.HasWildcard(filter))
            {
                if (_byTopic.TryGetValue(filter, out var exact) && exact.Message is { } message && !message.IsExpired(now))
                {
                    results.Add(message);
                }

                return;
            }

            var start = results.Count;
            _index.Match(filter, results);
            RemoveExpired(results, start, now);
        }
    }

    /// <summary>
    /// Up to <paramref name="limit"/> retained messages, not expired, whose topic matches <paramref name="filter"/>, in
    /// ordinal topic order after <paramref name="after"/> (null: from the first).
    /// </summary>
    public RetainedMessageInfo[] List(string filter, string? after, int limit)
    {
        var now = timeProvider.GetUtcNow().UtcDateTime;
        var page = new SmallestKeys<RetainedUpdate>(limit);
        using (_lock.Read())
        {
            foreach (var (topic, update) in _byTopic)
            {
                if ((after is null || string.CompareOrdinal(topic, after) > 0)
                    && page.Wants(topic)
                    && update.Message is { } message && !message.IsExpired(now)
                    && Topics.MqttTopic.Matches(filter, topic))
                {
                    page.Offer(topic, update);
                }
            }
        }

        var kept = page.ToSortedArray();
        var result = new RetainedMessageInfo[kept.Length];
        for (var i = 0; i < kept.Length; i++)
        {
            result[i] = new RetainedMessageInfo(kept[i].Topic, kept[i].Message!, kept[i].Version);
        }

        return result;
    }

    /// <summary>Adds each held message's (topic, version) hash to its bucket, at <paramref name="offset"/> in <paramref name="digest"/>.</summary>
    public void AddToDigest(long[] digest, int offset)
    {
        using (_lock.Read())
        {
            foreach (var (topic, update) in _byTopic)
            {
                digest[offset + ReplicaDigest.BucketOf(topic)] += ReplicaDigest.Hash(topic, update.Version);
            }
        }
    }

    /// <summary>
    /// Appends what is held for the topics <paramref name="include"/> accepts, deletions as updates without a message.
    /// </summary>
    public void Read(Func<string, bool> include, List<RetainedUpdate> results)
    {
        var deleted = new List<(string Key, long Version)>();
        using (_lock.Read())
        {
            foreach (var (topic, update) in _byTopic)
            {
                if (include(topic))
                {
                    results.Add(update);
                }
            }

            _tombstones.Collect(include, deleted);
        }

        foreach (var (topic, version) in deleted)
        {
            results.Add(new RetainedUpdate(topic, version, null));
        }
    }

    /// <summary>Forgets deletions older than <paramref name="olderThanUtc"/>; returns how many.</summary>
    public int PurgeTombstones(DateTime olderThanUtc)
    {
        using (_lock.Write())
        {
            return _tombstones.Purge(olderThanUtc);
        }
    }

    // Compacts results[start..] in place, keeping the order of what stays.
    private static void RemoveExpired(List<MqttMessage> results, int start, DateTime now)
    {
        var kept = start;
        for (var i = start; i < results.Count; i++)
        {
            if (!results[i].IsExpired(now))
            {
                results[kept++] = results[i];
            }
        }

        results.RemoveRange(kept, results.Count - kept);
    }
}
