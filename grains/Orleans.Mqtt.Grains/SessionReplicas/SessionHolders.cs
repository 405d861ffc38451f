namespace Orleans.Mqtt.Grains;

/// <summary>
/// Which silos hold a session's copies: rendezvous hashing of (client id, silo name) over the active silos other than
/// the home, highest score first. Silo names survive restarts, so a silo that comes back holds the same sessions as
/// before; a silo that joins or leaves changes the holders of only the sessions it scores highest for (about one in N
/// for N silos), and every silo computes the same order from the same membership view, so the placement of a session
/// whose home died can pick the silo that already holds its state.
/// </summary>
internal static class SessionHolders
{
    /// <summary>
    /// The active silos of <paramref name="snapshot"/> except the one named <paramref name="home"/> and the one at
    /// <paramref name="exclude"/>, best holder first.
    /// </summary>
    public static List<SiloAddress> Rank(ClusterMembershipSnapshot snapshot, string clientId, string? home, SiloAddress? exclude)
    {
        var ranked = new List<(ulong Score, SiloAddress Silo)>(snapshot.Members.Count);
        var seed = Seed(clientId);
        // The dictionary's own enumerator: its Values is an iterator, one object for every placement of a session.
        foreach (var (_, member) in snapshot.Members)
        {
            if (!IsCandidate(member, home, exclude))
            {
                continue;
            }

            ranked.Add((ScoreFrom(seed, member.Name ?? member.SiloAddress.ToParsableString()), member.SiloAddress));
        }

        // Highest score first; equal scores (practically never) by address, so every silo agrees.
        ranked.Sort(static (a, b) => a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Silo.CompareTo(b.Silo));
        var silos = new List<SiloAddress>(ranked.Count);
        foreach (var (_, silo) in ranked)
        {
            silos.Add(silo);
        }

        return silos;
    }

    /// <summary>
    /// Whether <see cref="Rank"/> would find any silo: without one (a single silo, the standalone broker) a caller need
    /// not hash the client id nor allocate the ranking.
    /// </summary>
    public static bool AnyCandidate(ClusterMembershipSnapshot snapshot, string? home, SiloAddress? exclude)
    {
        foreach (var (_, member) in snapshot.Members)
        {
            if (IsCandidate(member, home, exclude))
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsCandidate(ClusterMember member, string? home, SiloAddress? exclude) =>
        member.Status == SiloStatus.Active
        && !member.SiloAddress.Equals(exclude)
        && !string.Equals(member.Name, home, StringComparison.Ordinal);

    /// <summary>
    /// The silos that should hold a copy (in <see cref="SessionCopyStore"/>) of the session homed on the silo named
    /// <paramref name="home"/> with <paramref name="replicas"/> copies in all, best first. With the home active: the
    /// first <c>replicas - 1</c> of <see cref="Rank"/>, the ones its saves write to. With the home not active: the first
    /// <paramref name="replicas"/>, since the first of them is where the session is placed when it is next needed
    /// (<see cref="SessionHomePlacementDirector"/>), which then writes to the others as its holders.
    /// </summary>
    public static List<SiloAddress> CopyHolders(ClusterMembershipSnapshot snapshot, string clientId, string home, int replicas)
    {
        var ranked = Rank(snapshot, clientId, home, exclude: null);
        var count = snapshot.ActiveSilosNamed(home).Any() ? replicas - 1 : replicas;
        if (ranked.Count > count)
        {
            ranked.RemoveRange(count, ranked.Count - count);
        }

        return ranked;
    }

    /// <summary>The score of <paramref name="siloName"/> for <paramref name="clientId"/>: stable across processes and runs.</summary>
    public static ulong Score(string clientId, string siloName) => ScoreFrom(Seed(clientId), siloName);

    /// <summary>
    /// The part of <see cref="Score(string, string)"/> that depends on the client id alone: computed once for a client,
    /// it is carried on with each silo's name by <see cref="ScoreFrom"/>, so ranking the silos for a client
    /// hashes its id once, not once per silo.
    /// </summary>
    public static ulong Seed(string clientId)
    {
        // FNV-1a over both strings (with a separator no client id or silo name can blur), then a 64-bit finalizer
        // so that close inputs spread over the whole range.
        var hash = 14695981039346656037UL;
        foreach (var c in clientId)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        return (hash ^ 0xFFFF) * 1099511628211UL;
    }

    /// <summary>The score of a silo for a client whose <see cref="Seed"/> is <paramref name="seed"/>.</summary>
    public static ulong ScoreFrom(ulong seed, string siloName)
    {
        var hash = seed;
        foreach (var c in siloName)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        hash ^= hash >> 33;
        hash *= 0xFF51AFD7ED558CCDUL;
        hash ^= hash >> 33;
        hash *= 0xC4CEB9FE1A85EC53UL;
        hash ^= hash >> 33;
        return hash;
    }
}
