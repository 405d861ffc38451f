namespace Orleans.Mqtt.Grains;

/// <summary>
/// Which sessions a silo counts as its own in the cluster's figures, so that every session is counted by exactly one
/// active silo: the silo the session lives on (its home, the silo whose storage holds it, <see cref="ClientRoutes.Home"/>;
/// for a session kept in memory only, the silo it is active on, <see cref="ClientRoutes.ActiveOn"/>) and, for a session
/// whose silo is not active (lost, or not yet known), the first active silo of its ranking by client id
/// (<see cref="SessionHolders.Score"/>), where the session fails over. Both hold the session's entry also when routes
/// are sharded by topic (<see cref="RouteHolders.IsEntryHolder"/>), so the count needs nothing but the routes a silo holds.
/// </summary>
internal readonly struct SessionShare
{
    private readonly string _silo;
    private readonly HashSet<string> _active;

    /// <summary>The share of <paramref name="silo"/> among <paramref name="activeSilos"/> (names, in any order).</summary>
    public SessionShare(string silo, IReadOnlyList<string> activeSilos)
    {
        _silo = silo;
        _active = new HashSet<string>(activeSilos, StringComparer.Ordinal);
    }

    /// <summary>Whether the session of <paramref name="clientId"/>, living on the silo named <paramref name="home"/>, is this silo's to count.</summary>
    public bool Owns(string clientId, string? home)
    {
        if (home is not null && _active.Contains(home))
        {
            return string.Equals(home, _silo, StringComparison.Ordinal);
        }

        return string.Equals(FirstOf(clientId, _active), _silo, StringComparison.Ordinal);
    }

    /// <summary>The name among <paramref name="silos"/> that ranks first for <paramref name="clientId"/> (null when none).</summary>
    public static string? FirstOf(string clientId, IEnumerable<string> silos)
    {
        string? best = null;
        var bestScore = 0UL;
        var seed = SessionHolders.Seed(clientId);
        foreach (var silo in silos)
        {
            var score = SessionHolders.ScoreFrom(seed, silo);
            if (best is null || score > bestScore || (score == bestScore && string.CompareOrdinal(silo, best) < 0))
            {
                best = silo;
                bestScore = score;
            }
        }

        return best;
    }
}
