namespace Orleans.Mqtt.Bench;

/// <summary>What the subscriber side made of one received message.</summary>
internal enum DeliveryOutcome
{
    /// <summary>First delivery of this sequence number, in order.</summary>
    InOrder,

    /// <summary>First delivery of this sequence number, but a higher one was delivered before.</summary>
    OutOfOrder,

    /// <summary>This sequence number was delivered before.</summary>
    Duplicate,

    /// <summary>The sequence number is negative or beyond what the tool can track.</summary>
    Invalid,
}

/// <summary>
/// Sequence accounting for the messages of one publisher as seen by its subscriber: unique
/// deliveries, duplicates, out-of-order deliveries and, given how many messages the publisher
/// had accepted, how many were lost. No I/O; one writer (the subscriber's message handler),
/// while other threads may read the counters.
/// </summary>
internal sealed class DeliveryTracker
{
    /// <summary>Highest sequence number the tracker accepts; keeps a corrupt payload from growing the bitmap without bound.</summary>
    public const long MaxSequence = (1L << 34) - 1;

    private ulong[] _seen = new ulong[64];
    private long _highest = -1;
    private long _unique;
    private long _duplicates;
    private long _outOfOrder;
    private long _invalid;

    /// <summary>Number of distinct sequence numbers delivered.</summary>
    public long Unique => Volatile.Read(ref _unique);

    /// <summary>Number of deliveries of a sequence number that had been delivered before.</summary>
    public long Duplicates => Volatile.Read(ref _duplicates);

    /// <summary>Number of first deliveries that arrived after a higher sequence number.</summary>
    public long OutOfOrder => Volatile.Read(ref _outOfOrder);

    /// <summary>Number of deliveries whose sequence number could not be tracked.</summary>
    public long Invalid => Volatile.Read(ref _invalid);

    /// <summary>All deliveries, duplicates included.</summary>
    public long Delivered => Unique + Duplicates;

    /// <summary>Highest sequence number delivered so far, or -1.</summary>
    public long Highest => Volatile.Read(ref _highest);

    /// <summary>Accounts for one delivery of <paramref name="sequence"/>.</summary>
    public DeliveryOutcome Record(long sequence)
    {
        if ((ulong)sequence > MaxSequence)
        {
            Volatile.Write(ref _invalid, _invalid + 1);
            return DeliveryOutcome.Invalid;
        }

        var word = (int)(sequence >> 6);
        var bit = 1UL << (int)(sequence & 63);
        if (word >= _seen.Length)
        {
            Grow(word);
        }

        if ((_seen[word] & bit) != 0)
        {
            Volatile.Write(ref _duplicates, _duplicates + 1);
            return DeliveryOutcome.Duplicate;
        }

        _seen[word] |= bit;
        Volatile.Write(ref _unique, _unique + 1);
        if (sequence < _highest)
        {
            Volatile.Write(ref _outOfOrder, _outOfOrder + 1);
            return DeliveryOutcome.OutOfOrder;
        }

        Volatile.Write(ref _highest, sequence);
        return DeliveryOutcome.InOrder;
    }

    /// <summary>
    /// Messages the publisher had accepted (acknowledged at QoS 1/2, written at QoS 0) that were
    /// never delivered: <paramref name="published"/> minus the unique deliveries, never negative.
    /// </summary>
    public long Lost(long published) => Math.Max(0, published - Unique);

    /// <summary>Sequence numbers below the highest delivered one that were never delivered.</summary>
    public long Gaps => Highest + 1 - Unique;

    private void Grow(int word)
    {
        var length = _seen.Length;
        while (length <= word)
        {
            length *= 2;
        }

        Array.Resize(ref _seen, length);
    }
}
