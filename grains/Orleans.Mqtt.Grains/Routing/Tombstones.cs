namespace Orleans.Mqtt.Grains;

/// <summary>
/// Deletions remembered with their version and when they happened, so that a late older update (or a peer that missed
/// the deletion) cannot bring back what was deleted. Not thread-safe: its owner calls it under its lock.
/// </summary>
internal sealed class Tombstones
{
    private readonly Dictionary<string, (long Version, DateTime AtUtc)> _byKey = new(StringComparer.Ordinal);

    /// <summary>The version <paramref name="key"/> was deleted at, or 0.</summary>
    public long VersionOf(string key) => _byKey.TryGetValue(key, out var tombstone) ? tombstone.Version : 0;

    /// <summary>Whether a deletion of <paramref name="key"/> at <paramref name="version"/> or later is remembered.</summary>
    public bool Covers(string key, long version) => _byKey.TryGetValue(key, out var tombstone) && tombstone.Version >= version;

    /// <summary>Remembers the deletion of <paramref name="key"/> at <paramref name="version"/>.</summary>
    public void Add(string key, long version, DateTime atUtc) => _byKey[key] = (version, atUtc);

    /// <summary>Forgets the deletion of <paramref name="key"/> (it exists again).</summary>
    public void Remove(string key) => _byKey.Remove(key);

    /// <summary>Forgets deletions older than <paramref name="olderThanUtc"/>; returns how many.</summary>
    public int Purge(DateTime olderThanUtc)
    {
        var purged = 0;
        foreach (var (key, tombstone) in _byKey)
        {
            if (tombstone.AtUtc < olderThanUtc && _byKey.Remove(key))
            {
                purged++;
            }
        }

        return purged;
    }

    /// <summary>Appends (key, version) of the deletions whose key <paramref name="include"/> accepts.</summary>
    public void Collect(Func<string, bool> include, List<(string Key, long Version)> results)
    {
        foreach (var (key, tombstone) in _byKey)
        {
            if (include(key))
            {
                results.Add((key, tombstone.Version));
            }
        }
    }
}
