namespace Orleans.Mqtt.Topics;

/// <summary>
/// Validation, matching and sharding of MQTT topic names and topic filters (MQTT 3.1.1 section 4.7, MQTT 5.0 section 4.7).
/// </summary>
/// <remarks>All members work on spans and do not allocate.</remarks>
public static class MqttTopic
{
    /// <summary>The level separator, <c>'/'</c>.</summary>
    public const char LevelSeparator = '/';

    /// <summary>The single-level wildcard, <c>'+'</c>.</summary>
    public const char SingleLevelWildcard = '+';

    /// <summary>The multi-level wildcard, <c>'#'</c>.</summary>
    public const char MultiLevelWildcard = '#';

    /// <summary>Whether <paramref name="filter"/> contains a wildcard, that is, can match more than one topic name.</summary>
    public static bool HasWildcard(ReadOnlySpan<char> filter) => filter.IndexOfAny(SingleLevelWildcard, MultiLevelWildcard) >= 0;

    /// <summary>The largest UTF-8 length of a topic name or filter, in bytes.</summary>
    public const int MaxUtf8Length = 65535;

    private const uint FnvOffsetBasis = 2166136261;
    private const uint FnvPrime = 16777619;

    /// <summary>
    /// Returns whether <paramref name="topic"/> is a valid topic name for a PUBLISH: non-empty, no wildcard characters,
    /// no U+0000, well-formed UTF-16 (no lone surrogates) and at most 65535 bytes when encoded as UTF-8.
    /// </summary>
    /// <param name="topic">The topic name.</param>
    /// <returns><see langword="true"/> if the topic name is valid.</returns>
    public static bool IsValidTopicName(ReadOnlySpan<char> topic)
    {
        if (topic.IsEmpty || topic.IndexOfAny(SingleLevelWildcard, MultiLevelWildcard) >= 0)
        {
            return false;
        }

        return IsValidText(topic);
    }

    /// <summary>
    /// Returns whether <paramref name="filter"/> is a valid topic filter for a SUBSCRIBE: non-empty, <c>'+'</c> only as a
    /// whole level, <c>'#'</c> only as the whole last level, no U+0000, well-formed UTF-16 and at most 65535 bytes as UTF-8.
    /// </summary>
    /// <param name="filter">The topic filter.</param>
    /// <returns><see langword="true"/> if the topic filter is valid.</returns>
    public static bool IsValidTopicFilter(ReadOnlySpan<char> filter)
    {
        if (filter.IsEmpty)
        {
            return false;
        }

        var levelStart = 0;
        for (var i = 0; i < filter.Length; i++)
        {
            var c = filter[i];
            if (c == LevelSeparator)
            {
                levelStart = i + 1;
            }
            else if (c == SingleLevelWildcard)
            {
                // '+' must occupy its whole level.
                if (i != levelStart || (i + 1 < filter.Length && filter[i + 1] != LevelSeparator))
                {
                    return false;
                }
            }
            else if (c == MultiLevelWildcard)
            {
                // '#' must occupy the whole last level.
                if (i != levelStart || i != filter.Length - 1)
                {
                    return false;
                }
            }
        }

        return IsValidText(filter);
    }

    /// <summary>
    /// Returns whether the topic name <paramref name="topic"/> matches the topic filter <paramref name="filter"/>.
    /// </summary>
    /// <remarks>
    /// Both arguments are assumed valid (see <see cref="IsValidTopicName"/> and <see cref="IsValidTopicFilter"/>).
    /// <c>'+'</c> matches exactly one level, which may be empty; <c>'#'</c> matches any number of levels including
    /// none, so <c>a/#</c> also matches <c>a</c>. A topic that starts with <c>'$'</c> is not matched by a filter whose
    /// first level is a wildcard.
    /// </remarks>
    /// <param name="filter">The topic filter.</param>
    /// <param name="topic">The topic name.</param>
    /// <returns><see langword="true"/> if the topic matches the filter.</returns>
    public static bool Matches(ReadOnlySpan<char> filter, ReadOnlySpan<char> topic)
    {
        if (!topic.IsEmpty && topic[0] == '$' && !filter.IsEmpty
            && (filter[0] == SingleLevelWildcard || filter[0] == MultiLevelWildcard))
        {
            return false;
        }

        var filterPos = 0;
        var topicPos = 0;
        while (filterPos >= 0)
        {
            var filterLevel = NextLevel(filter, ref filterPos);
            if (filterLevel.Length == 1 && filterLevel[0] == MultiLevelWildcard)
            {
                return true;
            }

            if (topicPos < 0)
            {
                return false;
            }

            var topicLevel = NextLevel(topic, ref topicPos);
            if (!(filterLevel.Length == 1 && filterLevel[0] == SingleLevelWildcard) && !filterLevel.SequenceEqual(topicLevel))
            {
                return false;
            }
        }

        return topicPos < 0;
    }

    /// <summary>
    /// Returns the shard of <paramref name="topic"/> in <c>[0, <paramref name="shardCount"/>)</c>.
    /// </summary>
    /// <remarks>
    /// The shard is a function of the topic's UTF-8 bytes only (32-bit FNV-1a, reduced by multiply-shift), so it is the
    /// same in every process, on every machine and on every .NET version, and equals
    /// <see cref="ShardOf(ReadOnlySpan{byte}, int)"/> of the UTF-8 encoding. Lone surrogates hash as U+FFFD, as
    /// <see cref="System.Text.Encoding.UTF8"/> encodes them.
    /// </remarks>
    /// <param name="topic">The topic name.</param>
    /// <param name="shardCount">The number of shards; must be positive.</param>
    /// <returns>The shard number.</returns>
    public static int ShardOf(ReadOnlySpan<char> topic, int shardCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(shardCount);
        return Reduce(Fnv1a32(topic), shardCount);
    }

    /// <summary>
    /// Returns the shard of the UTF-8 encoded topic <paramref name="topicUtf8"/> in <c>[0, <paramref name="shardCount"/>)</c>;
    /// the same value as <see cref="ShardOf(ReadOnlySpan{char}, int)"/> for the decoded topic.
    /// </summary>
    /// <param name="topicUtf8">The topic name as UTF-8 bytes.</param>
    /// <param name="shardCount">The number of shards; must be positive.</param>
    /// <returns>The shard number.</returns>
    public static int ShardOf(ReadOnlySpan<byte> topicUtf8, int shardCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(shardCount);
        return Reduce(Fnv1a32(topicUtf8), shardCount);
    }

    /// <summary>32-bit FNV-1a over the UTF-8 encoding of <paramref name="text"/>, without materialising the bytes.</summary>
    internal static uint Fnv1a32(ReadOnlySpan<char> text)
    {
        var hash = FnvOffsetBasis;
        for (var i = 0; i < text.Length; i++)
        {
            uint c = text[i];
            if (c < 0x80)
            {
                hash = (hash ^ c) * FnvPrime;
            }
            else if (c < 0x800)
            {
                hash = (hash ^ (0xC0 | (c >> 6))) * FnvPrime;
                hash = (hash ^ (0x80 | (c & 0x3F))) * FnvPrime;
            }
            else if (char.IsHighSurrogate((char)c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var codePoint = (uint)char.ConvertToUtf32((char)c, text[i + 1]);
                i++;
                hash = (hash ^ (0xF0 | (codePoint >> 18))) * FnvPrime;
                hash = (hash ^ (0x80 | ((codePoint >> 12) & 0x3F))) * FnvPrime;
                hash = (hash ^ (0x80 | ((codePoint >> 6) & 0x3F))) * FnvPrime;
                hash = (hash ^ (0x80 | (codePoint & 0x3F))) * FnvPrime;
            }
            else
            {
                if (char.IsSurrogate((char)c))
                {
                    c = 0xFFFD;
                }

                hash = (hash ^ (0xE0 | (c >> 12))) * FnvPrime;
                hash = (hash ^ (0x80 | ((c >> 6) & 0x3F))) * FnvPrime;
                hash = (hash ^ (0x80 | (c & 0x3F))) * FnvPrime;
            }
        }

        return hash;
    }

    /// <summary>32-bit FNV-1a over <paramref name="bytes"/>.</summary>
    internal static uint Fnv1a32(ReadOnlySpan<byte> bytes)
    {
        var hash = FnvOffsetBasis;
        foreach (var b in bytes)
        {
            hash = (hash ^ b) * FnvPrime;
        }

        return hash;
    }

    /// <summary>
    /// Returns the next level of <paramref name="text"/> starting at <paramref name="position"/> and moves
    /// <paramref name="position"/> past it, to <c>-1</c> when it was the last level.
    /// </summary>
    public static ReadOnlySpan<char> NextLevel(ReadOnlySpan<char> text, scoped ref int position)
    {
        var rest = text[position..];
        var separator = rest.IndexOf(LevelSeparator);
        if (separator < 0)
        {
            position = -1;
            return rest;
        }

        position += separator + 1;
        return rest[..separator];
    }

    // Multiply-shift keeps the well-mixed high bits of the hash, where a modulo would keep the low bits.
    private static int Reduce(uint hash, int shardCount) => (int)(((ulong)hash * (uint)shardCount) >> 32);

    private static bool IsValidText(ReadOnlySpan<char> text)
    {
        // Every char is at least one UTF-8 byte, so longer spans can never fit.
        if (text.Length > MaxUtf8Length)
        {
            return false;
        }

        var utf8Length = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\0')
            {
                return false;
            }

            if (c < 0x80)
            {
                utf8Length += 1;
            }
            else if (c < 0x800)
            {
                utf8Length += 2;
            }
            else if (char.IsHighSurrogate(c))
            {
                if (i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1]))
                {
                    return false;
                }

                i++;
                utf8Length += 4;
            }
            else if (char.IsLowSurrogate(c))
            {
                return false;
            }
            else
            {
                utf8Length += 3;
            }
        }

        return utf8Length <= MaxUtf8Length;
    }
}
