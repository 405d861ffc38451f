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
/// Sequence accounting for the messages of one publisher as seen by one subscriber (or one shared
/// subscription group): unique deliveries, duplicates, out-of-order deliveries and, given how many
/// messages the publisher had accepted, how many were lost. No I/O; one writer at a time, while
/// other threads may read the counters.
/// </summary>
/// <remarks>
/// Seen sequence numbers are kept in a ring of <see cref="Window"/> bits that slides with the highest
/// one, so memory stays at 8 KiB per tracker however long the run. A delivery more than
/// <see cref="Window"/> below the highest is counted as out of order (and <see cref="Late"/>) and
/// taken to be a first delivery: the ring no longer knows whether it was one.
/// </remarks>
internal sealed class DeliveryTracker
{
    /// <summary>Highest sequence number the tracker accepts.</summary>
    public const long MaxSequence = (1L << 42) - 1;

    /// <summary>How far below the highest sequence number duplicates are still recognised.</summary>
    public const int Window = 1 << 16;

    private const int WordMask = (Window / 64) - 1;

    private readonly ulong[] _ring = new ulong[Window / 64];
    private long _base;
    private long _highest = -1;
    private long _lowest = long.MaxValue;
    private long _unique;
    private long _duplicates;
    private long _outOfOrder;
    private long _late;
    private long _invalid;

    /// <summary>Number of distinct sequence numbers delivered.</summary>
    public long Unique => Volatile.Read(ref _unique);

    /// <summary>Number of deliveries of a sequence number that had been delivered before.</summary>
    public long Duplicates => Volatile.Read(ref _duplicates);

    /// <summary>Number of first deliveries that arrived after a higher sequence number.</summary>
    public long OutOfOrder => Volatile.Read(ref _outOfOrder);

    /// <summary>Deliveries so far below the highest that duplicates could no longer be told apart (included in <see cref="OutOfOrder"/>).</summary>
    public long Late => Volatile.Read(ref _late);

    /// <summary>Number of deliveries whose sequence number could not be tracked.</summary>
    public long Invalid => Volatile.Read(ref _invalid);

    /// <summary>All deliveries, duplicates included.</summary>
    public long Delivered => Unique + Duplicates;

    /// <summary>Highest sequence number delivered so far, or -1.</summary>
    public long Highest => Volatile.Read(ref _highest);

    /// <summary>Lowest sequence number delivered so far, or -1.</summary>
    public long Lowest => Unique == 0 ? -1 : Volatile.Read(ref _lowest);

    /// <summary>Accounts for one delivery of <paramref name="sequence"/>.</summary>
    public DeliveryOutcome Record(long sequence)
    {
        if ((ulong)sequence > MaxSequence)
        {
            Volatile.Write(ref _invalid, _invalid + 1);
            return DeliveryOutcome.Invalid;
        }

        if (sequence < _lowest)
        {
            Volatile.Write(ref _lowest, sequence);
        }

        if (sequence < _base)
        {
            Volatile.Write(ref _late, _late + 1);
            Volatile.Write(ref _unique, _unique + 1);
            Volatile.Write(ref _outOfOrder, _outOfOrder + 1);
            return DeliveryOutcome.OutOfOrder;
        }

        if (sequence >= _base + Window)
        {
            Slide(sequence);
        }

        ref var word = ref _ring[(int)(sequence >> 6) & WordMask];
        var bit = 1UL << (int)(sequence & 63);
        if ((word & bit) != 0)
        {
            Volatile.Write(ref _duplicates, _duplicates + 1);
            return DeliveryOutcome.Duplicate;
        }

        word |= bit;
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

    /// <summary>
    /// Sequence numbers between the lowest and the highest delivered that were never delivered: the loss
    /// seen by a subscriber that does not know where its publisher started (the <c>sub</c> scenario).
    /// </summary>
    public long GapsSinceLowest => Unique == 0 ? 0 : Math.Max(0, Highest - Lowest + 1 - Unique);

    private void Slide(long sequence)
    {
        // The new base is a multiple of 64 with sequence inside the window; words that leave are cleared.
        var newBase = (sequence - Window + 1 + 63) & ~63L;
        if (newBase - _base >= Window)
        {
            Array.Clear(_ring);
        }
        else
        {
            for (var word = _base >> 6; word < newBase >> 6; word++)
            {
                _ring[(int)word & WordMask] = 0;
            }
        }

        _base = newBase;
    }
}
