using Orleans.Concurrency;

namespace Orleans.Mqtt.Grains;

/// <summary>Answers the admin API's listings from this silo's <see cref="RouteTable"/> (see <see cref="IAdminQueryGrain"/>).</summary>
[SiloPinnedPlacement]
[Reentrant]
internal sealed class AdminQueryGrain(RouteTable table, ILocalSiloDetails localSilo, IClusterMembershipService membership) : Grain, IAdminQueryGrain
{
    /// <summary>The most entries one page may ask for.</summary>
    internal const int MaxPage = 1000;

    public async Task<ClientSummary[]> ListClients(ClientQuery query)
    {
        await table.Ready;
        var active = new List<string>();
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            if (member.Status == SiloStatus.Active)
            {
                active.Add(member.Name);
            }
        }

        // A session whose silo is lost is listed by the silo it fails over to, until it is rebuilt there.
        return table.ListClients(localSilo.Name, active, query with { Limit = Math.Clamp(query.Limit, 0, MaxPage) });
    }

    public async Task<RetainedMessageInfo[]> ListRetained(string filter, string? after, int limit)
    {
        await table.Ready;
        return table.ListRetained(filter, after, Math.Clamp(limit, 0, MaxPage));
    }
}
