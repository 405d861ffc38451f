namespace Orleans.Mqtt.Grains;

/// <summary>
/// Which sessions a silo counts as its own in the cluster's figures, so that every session is counted by exactly one
/// active silo: the silo the session lives on (its home, the silo whose storage holds it, <see cref="ClientRoutes.Home"/>;
/// for a session kept in memory only, the silo it is active on, <see cref="ClientRoutes.ActiveOn"/>) and, for a session
/// whose silo is not active (lost, or not yet known), the silo whose slice of the client ids holds it: the same stable
/// hash over the active silos, ordered by name, for every silo. Needs nothing but the session's own routes, so it holds
/// wherever those routes are kept.
/// </summary>
internal readonly struct SessionShare
{
    private readonly string _silo;
    private readonly HashSet<string> _active;
    private readonly int _slices;
    private readonly int _mine;

    /// <summary>The share of <paramref name="silo"/> among <paramref name="activeSilos"/> (names, in any order).</summary>
    public SessionShare(string silo, IReadOnlyList<string> activeSilos)
    {
        _silo = silo;
        _active = new HashSet<string>(activeSilos, StringComparer.Ordinal);
        var ordered = _active.Order(StringComparer.Ordinal).ToList();
        _slices = ordered.Count;
        _mine = ordered.IndexOf(silo);
    }

    /// <summary>Whether the session of <paramref name="clientId"/>, living on the silo named <paramref name="home"/>, is this silo's to count.</summary>
    public bool Owns(string clientId, string? home)
    {
        if (home is not null && _active.Contains(home))
        {
            return string.Equals(home, _silo, StringComparison.Ordinal);
        }

        return _mine >= 0 && SliceOf(clientId, _slices) == _mine;
    }

    /// <summary>The slice of <paramref name="clientId"/> among <paramref name="slices"/> silos.</summary>
    public static int SliceOf(string clientId, int slices) => Topics.MqttTopic.ShardOf(clientId, slices);
}
