using Orleans.Configuration;

namespace Orleans.Mqtt.Silo;

/// <summary>
/// The failure detection a silo starts with, before the <c>Membership</c> section is applied over it. A killed silo is
/// suspected after <see cref="NumMissedProbesLimit"/> probes of <see cref="ProbeTimeout"/> each missed, and declared dead
/// once <see cref="NumVotesForDeathDeclaration"/> silos suspect it (Orleans needs no more votes than half the active
/// silos, rounded up, so a cluster of two still declares the other dead): about 3 s from the kill, where Orleans' defaults (5 s × 3)
/// take 15-30 s. Every call into that silo waits for the declaration, and a publisher's connection with it.
/// </summary>
/// <remarks>
/// The price is false suspicion: a silo that stops answering for longer than the probes allow (a long GC pause, a
/// starved or swapping machine, a network hiccup) is declared dead and has to restart; its sessions move. Such a silo
/// is not cut off on one missed probe: Orleans probes it indirectly through another silo first, stretches the probe
/// timeout while the prober's own health is degraded, and votes older than <see cref="DeathVoteExpirationTimeout"/> no
/// longer count. On slow or shared machines raise <c>Membership:ProbeTimeout</c> (e.g. 00:00:05, Orleans' default).
/// </remarks>
internal static class FastFailureDetection
{
    /// <summary>The first probe timeout and the period between probes (Orleans adapts it between half and four times).</summary>
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(1);

    /// <summary>Missed probes before a silo suspects a peer.</summary>
    public const int NumMissedProbesLimit = 3;

    /// <summary>Suspicions needed to declare a silo dead.</summary>
    public const int NumVotesForDeathDeclaration = 2;

    /// <summary>How long a suspicion counts: two silos must suspect the same peer within this time.</summary>
    public static readonly TimeSpan DeathVoteExpirationTimeout = TimeSpan.FromSeconds(20);

    /// <summary>How often a silo reads the membership table besides the changes gossiped to it.</summary>
    public static readonly TimeSpan TableRefreshTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Sets the defaults of this broker on <paramref name="options"/>.</summary>
    public static void Apply(ClusterMembershipOptions options)
    {
        options.ProbeTimeout = ProbeTimeout;
        options.NumMissedProbesLimit = NumMissedProbesLimit;
        options.NumVotesForDeathDeclaration = NumVotesForDeathDeclaration;
        options.DeathVoteExpirationTimeout = DeathVoteExpirationTimeout;
        options.TableRefreshTimeout = TableRefreshTimeout;
    }
}
