namespace Orleans.Mqtt.Grains;

/// <summary>Silos by name, the identity sessions name their home by (a restarted silo keeps it, not its address).</summary>
internal static class SiloNames
{
    /// <summary>The active silos named <paramref name="name"/>: one, unless an earlier run of it is not yet declared dead.</summary>
    public static IEnumerable<SiloAddress> ActiveSilosNamed(this ClusterMembershipSnapshot snapshot, string name)
    {
        foreach (var member in snapshot.Members.Values)
        {
            if (member.Status == SiloStatus.Active && string.Equals(member.Name, name, StringComparison.Ordinal))
            {
                yield return member.SiloAddress;
            }
        }
    }
}
