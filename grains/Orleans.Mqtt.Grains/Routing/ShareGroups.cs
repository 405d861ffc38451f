using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// The members of each shared subscription (<c>$share/group/filter</c>) and the round robin over them. Membership
/// changes under <see cref="RouteTable"/>'s write lock; choosing runs under its read lock, from many threads at once,
/// so the cursors are atomic.
/// </summary>
internal sealed class ShareGroups
{
    private readonly Dictionary<string, List<RouteEntry>> _members = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StrongBox<int>> _cursors = new(StringComparer.Ordinal);

    /// <summary>Adds a member (an entry with a <see cref="RouteEntry.ShareKey"/>).</summary>
    public void Add(RouteEntry entry)
    {
        var shareKey = entry.ShareKey!;
        if (!_members.TryGetValue(shareKey, out var members))
        {
            _members[shareKey] = members = [];
        }

        members.Add(entry);
    }

    /// <summary>Removes the member's client from the entry's group, and the group once it is empty.</summary>
    public void Remove(RouteEntry entry)
    {
        var shareKey = entry.ShareKey!;
        if (_members.TryGetValue(shareKey, out var members))
        {
            members.RemoveAll(m => m.ClientId == entry.ClientId);
            if (members.Count == 0)
            {
                _members.Remove(shareKey);
                _cursors.TryRemove(shareKey, out _);
            }
        }
    }

    /// <summary>The members of a group, or null when it has none.</summary>
    public List<RouteEntry>? MembersOf(string shareKey) => _members.GetValueOrDefault(shareKey);

    /// <summary>
    /// Round robin over <paramref name="members"/> of a share group, preferring connected members so that messages are
    /// not parked with an offline persistent member while another member could take them. Members whose client
    /// <paramref name="clients"/> does not know, and <paramref name="exclude"/>, are passed over.
    /// </summary>
    public RouteEntry? Choose(string shareKey, List<RouteEntry> members, string? exclude, Dictionary<string, ClientRoutes> clients)
    {
        var online = 0;
        var eligible = 0;
        foreach (var m in members)
        {
            if (m.ClientId != exclude && clients.TryGetValue(m.ClientId, out var c))
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

        var cursor = _cursors.GetOrAdd(shareKey, static _ => new StrongBox<int>());
        var pick = (int)((uint)Interlocked.Increment(ref cursor.Value) % (uint)(online > 0 ? online : eligible));
        foreach (var m in members)
        {
            if (m.ClientId == exclude || !clients.TryGetValue(m.ClientId, out var c) || (online > 0 && c.Presence is null))
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
}
