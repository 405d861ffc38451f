namespace Orleans.Mqtt.Grains;

/// <summary>
/// Adds up the cluster's figures from the gateways' heartbeats and the silos' shares (see <see cref="ClusterStats"/>).
/// A gateway is live while it reports within <c>gatewayTimeout</c>. When one departs (silent for longer, declared dead,
/// left, or replaced by a new run under the same id), what it had counted moves into the departed total, so the
/// traffic totals never drop; a departed run that reports again adds only what it counted since. Not thread-safe: the
/// gateway directory's activation, which owns it, calls it one turn at a time.
/// </summary>
internal sealed class ClusterStatsAggregator(TimeProvider timeProvider, TimeSpan gatewayTimeout)
{
    // A departed gateway's entry is kept this long, so that a run declared dead while cut off, that comes back, is
    // not counted twice; after it, a gateway id generated per run (the default) leaves nothing behind.
    private static readonly TimeSpan ForgetDepartedAfter = TimeSpan.FromHours(1);
    private readonly Dictionary<string, Entry> _gateways = new(StringComparer.Ordinal);
    private TrafficCounters _departed = TrafficCounters.Zero;

    private DateTime Now => timeProvider.GetUtcNow().UtcDateTime;

    /// <summary>Takes a gateway's heartbeat.</summary>
    public void Report(GatewayReport report)
    {
        var now = Now;
        if (_gateways.TryGetValue(report.GatewayId, out var entry) && entry.Last.Incarnation == report.Incarnation)
        {
            entry.Last = report;
            entry.LastSeen = now;
            entry.Live = true;
            return;
        }

        if (entry is not null)
        {
            // A new run under the same id: the old run's counts are final.
            Depart(entry);
        }

        _gateways[report.GatewayId] = new Entry(report, now);
    }

    /// <summary>A gateway declared dead or gone: its connections no longer count, its traffic is kept.</summary>
    public void Depart(string gatewayId)
    {
        if (_gateways.TryGetValue(gatewayId, out var entry))
        {
            Depart(entry);
        }
    }

    /// <summary>
    /// The figures now, from the gateways' last reports and the given silo shares (one per active silo; the retained
    /// count is the largest of the ready silos', each of which holds every retained message).
    /// </summary>
    public ClusterStats Snapshot(IReadOnlyCollection<SiloStats> silos)
    {
        var now = Now;
        ExpireSilent(now);
        var gateways = new List<GatewayStats>();
        var traffic = _departed;
        long connected = 0;
        DateTime? upSince = null;
        foreach (var (id, entry) in _gateways)
        {
            if (!entry.Live)
            {
                continue;
            }

            var r = entry.Last;
            var counters = r.Traffic ?? TrafficCounters.Zero;
            gateways.Add(new GatewayStats(id, r.StartedAtUtc, entry.LastSeen, r.ConnectedClients, counters));
            traffic += counters - entry.Credited;
            connected += r.ConnectedClients;
            if (r.StartedAtUtc != default && (upSince is null || r.StartedAtUtc < upSince))
            {
                upSince = r.StartedAtUtc;
            }
        }

        long sessions = 0, subscriptions = 0, retained = 0;
        foreach (var silo in silos)
        {
            sessions += silo.Sessions;
            subscriptions += silo.Subscriptions;
            if (silo.Ready)
            {
                retained = Math.Max(retained, silo.RetainedHeld);
            }
        }

        gateways.Sort(static (a, b) => string.CompareOrdinal(a.GatewayId, b.GatewayId));
        var siloList = silos.OrderBy(s => s.Silo, StringComparer.Ordinal).ToArray();
        var totals = new ClusterTotals(gateways.Count, siloList.Length, connected, sessions, subscriptions, retained, traffic);
        return new ClusterStats(now, upSince, totals, [.. gateways], siloList, _departed);
    }

    // Live gateways silent for longer than the timeout depart; departed ones are forgotten after a while.
    private void ExpireSilent(DateTime now)
    {
        List<string>? forget = null;
        foreach (var (id, entry) in _gateways)
        {
            if (entry.Live && now - entry.LastSeen > gatewayTimeout)
            {
                Depart(entry);
            }
            else if (!entry.Live && now - entry.LastSeen > ForgetDepartedAfter)
            {
                (forget ??= []).Add(id);
            }
        }

        foreach (var id in forget ?? [])
        {
            _gateways.Remove(id);
        }
    }

    private void Depart(Entry entry)
    {
        if (!entry.Live)
        {
            return;
        }

        var total = entry.Last.Traffic ?? TrafficCounters.Zero;
        _departed += total - entry.Credited;
        entry.Credited = total;
        entry.Live = false;
    }

    private sealed class Entry(GatewayReport last, DateTime lastSeen)
    {
        public GatewayReport Last { get; set; } = last;

        public DateTime LastSeen { get; set; } = lastSeen;

        public bool Live { get; set; } = true;

        // What of this run's counts is already in the departed total (its counts when it was last declared gone).
        public TrafficCounters Credited { get; set; } = TrafficCounters.Zero;
    }
}
