namespace Orleans.Mqtt.Grains;

/// <summary>The silos a stopping silo hands its sessions to: the other active silos, in turn.</summary>
internal sealed class HandoverTargets(IClusterMembershipService membership, ILocalSiloDetails localSilo)
{
    private int _next;

    /// <summary>The next target, or null when no other silo is active (a single node keeps its sessions on disk).</summary>
    public SiloAddress? Next()
    {
        var others = membership.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active && !m.SiloAddress.Equals(localSilo.SiloAddress))
            .Select(m => m.SiloAddress)
            .ToList();
        return others.Count == 0 ? null : others[(int)((uint)Interlocked.Increment(ref _next) % (uint)others.Count)];
    }
}
