namespace Orleans.Mqtt.Clustering;

/// <summary>The decisions every membership store makes the same way, whatever holds the rows.</summary>
internal static class MembershipRules
{
    /// <summary>
    /// A row may be removed by <see cref="IMembershipTable.CleanupDefunctSiloEntries"/> when its silo is not active
    /// and nothing has touched it (start, I-am-alive, a suspicion vote) since <paramref name="beforeDate"/>. A recent
    /// vote keeps a freshly declared dead silo visible to the others for a while.
    /// </summary>
    public static bool IsDefunct(MembershipEntry entry, DateTimeOffset beforeDate)
    {
        if (entry.Status == SiloStatus.Active)
        {
            return false;
        }

        var lastUpdate = AsUtc(entry.StartTime);
        var alive = AsUtc(entry.IAmAliveTime);
        if (alive > lastUpdate)
        {
            lastUpdate = alive;
        }

        if (entry.SuspectTimes is { } votes)
        {
            foreach (var (_, time) in votes)
            {
                var voteTime = AsUtc(time);
                if (voteTime > lastUpdate)
                {
                    lastUpdate = voteTime;
                }
            }
        }

        return new DateTimeOffset(lastUpdate) < beforeDate;
    }

    /// <summary>The gateway addresses of a table: active silos that accept clients (a proxy port other than 0).</summary>
    public static IList<Uri> Gateways(MembershipTableData table)
    {
        var gateways = new List<Uri>();
        foreach (var (entry, _) in table.Members)
        {
            if (entry.Status == SiloStatus.Active && entry.ProxyPort != 0)
            {
                var silo = entry.SiloAddress;
                gateways.Add(SiloAddress.New(silo.Endpoint.Address, entry.ProxyPort, silo.Generation).ToGatewayUri());
            }
        }

        return gateways;
    }

    private static DateTime AsUtc(DateTime time) => time.Kind == DateTimeKind.Local
        ? time.ToUniversalTime()
        : DateTime.SpecifyKind(time, DateTimeKind.Utc);
}
