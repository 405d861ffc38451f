namespace Orleans.Mqtt.Grains;

/// <summary>
/// When each disconnected session next needs the sweeper (its delayed will is due or it expires), in time order.
/// Not thread-safe: <see cref="RouteTable"/> calls it under its lock.
/// </summary>
internal sealed class SweepSchedule
{
    private readonly SortedSet<(DateTime At, string ClientId)> _queue = [];

    // Due sessions another silo sweeps (routes sharded by topic), set aside until the active silos change.
    private readonly HashSet<(DateTime At, string ClientId)> _parked = [];

    /// <summary>Schedules <paramref name="clientId"/> at <paramref name="atUtc"/>.</summary>
    public void Add(DateTime atUtc, string clientId) => _queue.Add((atUtc, clientId));

    /// <summary>Removes what <see cref="Add"/> scheduled.</summary>
    public void Remove(DateTime atUtc, string clientId)
    {
        if (!_queue.Remove((atUtc, clientId)))
        {
            _parked.Remove((atUtc, clientId));
        }
    }

    /// <summary>
    /// As <see cref="CollectDue(DateTime, List{string}, int)"/>, for the clients <paramref name="mine"/> accepts; the due
    /// ones it does not are set aside (they need no look every round) until <see cref="Unpark"/>.
    /// </summary>
    public void CollectDue(DateTime nowUtc, List<string> clientIds, int max, Func<string, bool> mine)
    {
        List<(DateTime, string)>? park = null;
        foreach (var (at, clientId) in _queue)
        {
            if (at > nowUtc || clientIds.Count >= max)
            {
                break;
            }

            if (mine(clientId))
            {
                clientIds.Add(clientId);
            }
            else
            {
                (park ??= []).Add((at, clientId));
            }
        }

        if (park is not null)
        {
            foreach (var entry in park)
            {
                _queue.Remove(entry);
                _parked.Add(entry);
            }
        }
    }

    /// <summary>Puts the clients set aside by <see cref="CollectDue(DateTime, List{string}, int, Func{string, bool})"/> back in the schedule.</summary>
    public void Unpark()
    {
        foreach (var entry in _parked)
        {
            _queue.Add(entry);
        }

        _parked.Clear();
    }

    /// <summary>Appends, earliest first, the clients due at <paramref name="nowUtc"/>, up to <paramref name="max"/> in the list.</summary>
    public void CollectDue(DateTime nowUtc, List<string> clientIds, int max)
    {
        foreach (var (at, clientId) in _queue)
        {
            if (at > nowUtc || clientIds.Count >= max)
            {
                return;
            }

            clientIds.Add(clientId);
        }
    }
}
