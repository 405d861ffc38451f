using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// How two valid topic filters relate, by the topics they match (MQTT matching: <c>+</c> one level, <c>#</c> any number
/// including none, and a topic starting with <c>$</c> matched by no filter whose first level is a wildcard).
/// </summary>
internal static class FilterRelation
{
    /// <summary>Whether every topic <paramref name="inner"/> matches is matched by <paramref name="outer"/> too.</summary>
    public static bool Covers(ReadOnlySpan<char> outer, ReadOnlySpan<char> inner)
    {
        if (StartsWithWildcard(outer) && !StartsWithWildcard(inner) && StartsWithDollar(inner))
        {
            return false;
        }

        int o = 0, i = 0, level = 0;
        var noParent = true;
        while (true)
        {
            if (o < 0)
            {
                return i < 0;
            }

            var outerLevel = MqttTopic.NextLevel(outer, ref o);
            if (IsMulti(outerLevel))
            {
                return true;
            }

            if (i < 0)
            {
                return false;
            }

            var innerLevel = MqttTopic.NextLevel(inner, ref i);
            if (IsMulti(innerLevel))
            {
                // A '#' whose parent would be no topic (none at all, or the empty one) matches one level or more:
                // so does '+/#'.
                return noParent && IsSingle(outerLevel) && o >= 0 && IsMulti(outer[o..]);
            }

            noParent = false;
            if (level++ == 0 && innerLevel.IsEmpty)
            {
                noParent = true;
            }

            if (!IsSingle(outerLevel) && (IsSingle(innerLevel) || !outerLevel.SequenceEqual(innerLevel)))
            {
                return false;
            }
        }
    }

    /// <summary>Whether some topic is matched by both <paramref name="a"/> and <paramref name="b"/>.</summary>
    public static bool Intersects(ReadOnlySpan<char> a, ReadOnlySpan<char> b)
    {
        if ((StartsWithWildcard(a) && !StartsWithWildcard(b) && StartsWithDollar(b))
            || (StartsWithWildcard(b) && !StartsWithWildcard(a) && StartsWithDollar(a)))
        {
            return false;
        }

        int pa = 0, pb = 0;
        var emptySoFar = false;
        while (true)
        {
            if (pa < 0 || pb < 0)
            {
                // One ended: the other still matches the same topic only with a '#' (which matches the parent) left,
                // and not when that parent would be the empty topic, which is no topic.
                return (pa < 0 && pb < 0) || (!emptySoFar && (pa < 0 ? IsMulti(b[pb..]) : IsMulti(a[pa..])));
            }

            var first = pa == 0;
            var la = MqttTopic.NextLevel(a, ref pa);
            var lb = MqttTopic.NextLevel(b, ref pb);
            emptySoFar = first && (la.IsEmpty || lb.IsEmpty);
            if (IsMulti(la) || IsMulti(lb))
            {
                return true;
            }

            if (!IsSingle(la) && !IsSingle(lb) && !la.SequenceEqual(lb))
            {
                return false;
            }
        }
    }

    private static bool IsMulti(ReadOnlySpan<char> level) => level is ['#'];

    private static bool IsSingle(ReadOnlySpan<char> level) => level is ['+'];

    private static bool StartsWithWildcard(ReadOnlySpan<char> filter) => filter is ['+', ..] or ['#', ..];

    private static bool StartsWithDollar(ReadOnlySpan<char> filter) => filter is ['$', ..];
}
