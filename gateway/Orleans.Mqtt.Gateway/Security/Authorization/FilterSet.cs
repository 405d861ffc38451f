using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Topic filters of one kind (read, write or deny) for one connection, indexed by their first level so that checking a
/// topic looks only at the filters that can match it (those starting with that level, and those starting with a wildcard).
/// </summary>
internal sealed class FilterSet
{
    private readonly Dictionary<string, List<string>> _byFirstLevel = new(StringComparer.Ordinal);
    private readonly List<string> _wildcardFirst = [];
    private readonly List<string> _all = [];

    public int Count => _all.Count;

    /// <summary>Every filter, in the order added.</summary>
    public IReadOnlyList<string> All => _all;

    public void Add(string filter)
    {
        _all.Add(filter);
        var position = 0;
        var first = MqttTopic.NextLevel(filter, ref position);
        if (first is ['+'] or ['#'])
        {
            _wildcardFirst.Add(filter);
            return;
        }

        var key = first.ToString();
        if (!_byFirstLevel.TryGetValue(key, out var list))
        {
            _byFirstLevel[key] = list = [];
        }

        list.Add(filter);
    }

    /// <summary>Whether a filter of the set matches <paramref name="topic"/>.</summary>
    public bool Matches(string topic)
    {
        if (_all.Count == 0)
        {
            return false;
        }

        foreach (var filter in _wildcardFirst)
        {
            if (MqttTopic.Matches(filter, topic))
            {
                return true;
            }
        }

        var position = 0;
        var first = MqttTopic.NextLevel(topic, ref position);
        if (_byFirstLevel.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(first, out var candidates))
        {
            foreach (var filter in candidates)
            {
                if (MqttTopic.Matches(filter, topic))
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>Whether a filter of the set matches every topic <paramref name="filter"/> matches.</summary>
    public bool Covers(string filter)
    {
        foreach (var mine in _all)
        {
            if (FilterRelation.Covers(mine, filter))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether a filter of the set matches some topic <paramref name="filter"/> matches.</summary>
    public bool Intersects(string filter)
    {
        foreach (var mine in _all)
        {
            if (FilterRelation.Intersects(mine, filter))
            {
                return true;
            }
        }

        return false;
    }
}
