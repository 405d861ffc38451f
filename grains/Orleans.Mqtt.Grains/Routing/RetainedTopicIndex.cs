using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// The topic names of the retained messages in a trie, one level per node, so that a topic filter visits only the
/// branches it can match instead of every retained topic. This is the reverse of <see cref="TopicIndex{T}"/>, which
/// matches one topic against many stored filters: here one filter is matched against many stored topics.
/// Not thread-safe: <see cref="RetainedStore"/> calls it under its lock.
/// </summary>
/// <typeparam name="T">The value held for each topic.</typeparam>
internal sealed class RetainedTopicIndex<T>
    where T : class
{
    private readonly Node _root = new();

    /// <summary>Topics held.</summary>
    public int Count { get; private set; }

    /// <summary>Sets the value of <paramref name="topic"/>, adding the topic when it is new.</summary>
    public void Set(string topic, T value)
    {
        var node = _root;
        var position = 0;
        while (position >= 0)
        {
            var level = MqttTopic.NextLevel(topic, ref position);
            var lookup = node.Children.GetAlternateLookup<ReadOnlySpan<char>>();
            if (!lookup.TryGetValue(level, out var child))
            {
                child = new Node();
                node.Children[level.ToString()] = child;
            }

            node = child;
        }

        if (node.Value is null)
        {
            Count++;
        }

        node.Value = value;
    }

    /// <summary>Removes <paramref name="topic"/> and the branches it leaves empty; false when it was not held.</summary>
    public bool Remove(string topic)
    {
        if (!Remove(_root, topic, 0))
        {
            return false;
        }

        Count--;
        return true;
    }

    /// <summary>
    /// Appends the value of every topic that <paramref name="filter"/> matches, as <see cref="MqttTopic.Matches"/>
    /// decides: <c>+</c> takes any one level, <c>#</c> the level it stands at and everything below, and a filter that
    /// starts with a wildcard never matches a topic that starts with <c>$</c>.
    /// </summary>
    public void Match(ReadOnlySpan<char> filter, List<T> results) => Match(_root, filter, 0, atRoot: true, results);

    private static void Match(Node node, ReadOnlySpan<char> filter, int position, bool atRoot, List<T> results)
    {
        // The recursion goes one level of the filter deep at a time; filters are short, so the depth is too.
        var level = MqttTopic.NextLevel(filter, ref position);
        if (level is ['#'])
        {
            // '#' also matches the parent level: "a/#" matches "a" (the root itself is never a topic).
            if (!atRoot && node.Value is { } parent)
            {
                results.Add(parent);
            }

            foreach (var (name, child) in node.Children)
            {
                if (!(atRoot && name.StartsWith('$')))
                {
                    CollectAll(child, results);
                }
            }

            return;
        }

        if (level is ['+'])
        {
            foreach (var (name, child) in node.Children)
            {
                if (!(atRoot && name.StartsWith('$')))
                {
                    Next(child, filter, position, results);
                }
            }

            return;
        }

        if (node.Children.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(level, out var exact))
        {
            Next(exact, filter, position, results);
        }
    }

    private static void Next(Node child, ReadOnlySpan<char> filter, int position, List<T> results)
    {
        if (position < 0)
        {
            if (child.Value is { } value)
            {
                results.Add(value);
            }

            return;
        }

        Match(child, filter, position, atRoot: false, results);
    }

    private static void CollectAll(Node node, List<T> results)
    {
        if (node.Value is { } value)
        {
            results.Add(value);
        }

        foreach (var child in node.Children.Values)
        {
            CollectAll(child, results);
        }
    }

    private static bool Remove(Node node, ReadOnlySpan<char> topic, int position)
    {
        var level = MqttTopic.NextLevel(topic, ref position);
        var lookup = node.Children.GetAlternateLookup<ReadOnlySpan<char>>();
        if (!lookup.TryGetValue(level, out var child))
        {
            return false;
        }

        bool removed;
        if (position < 0)
        {
            removed = child.Value is not null;
            child.Value = null;
        }
        else
        {
            removed = Remove(child, topic, position);
        }

        if (removed && child.Value is null && child.Children.Count == 0)
        {
            lookup.Remove(level);
        }

        return removed;
    }

    /// <summary>One level of a topic name: the value when a topic ends here, and the next levels.</summary>
    private sealed class Node
    {
        public Dictionary<string, Node> Children { get; } = new(StringComparer.Ordinal);

        public T? Value { get; set; }
    }
}
