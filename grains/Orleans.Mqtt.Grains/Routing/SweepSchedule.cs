namespace Orleans.Mqtt.Grains;

/// <summary>
/// When each disconnected session next needs the sweeper (its delayed will is due or it expires), in time order.
/// Not thread-safe: <see cref="RouteTable"/> calls it under its lock.
/// </summary>
internal sealed class SweepSchedule
{
    private readonly SortedSet<(DateTime At, string ClientId)> _queue = [];

    /// <summary>Schedules <paramref name="clientId"/> at <paramref name="atUtc"/>.</summary>
    public void Add(DateTime atUtc, string clientId) => _queue.Add((atUtc, clientId));

    /// <summary>Removes what <see cref="Add"/> scheduled.</summary>
    public void Remove(DateTime atUtc, string clientId) => _queue.Remove((atUtc, clientId));

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
