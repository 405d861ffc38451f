using System.Numerics;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// A log-linear histogram of non-negative integer values (the tool records nanoseconds).
/// Values below 128 are exact; above that every power-of-two range is split into 64 linear
/// buckets, so a reported percentile is at most 1/64 (about 1.6 %) above the true value.
/// Recording is allocation-free; one instance has one writer.
/// </summary>
internal sealed class LatencyHistogram
{
    private const int LinearBits = 7;
    private const int LinearCount = 1 << LinearBits;
    private const int HalfCount = LinearCount / 2;
    // The largest long has its top bit at 62, so values are shifted right by at most 62 - 6.
    private const int MaxShift = 62 - (LinearBits - 1);
    private const int BucketCount = LinearCount + (MaxShift - 1) * HalfCount + HalfCount;

    private readonly long[] _counts = new long[BucketCount];
    private long _count;
    private long _min = long.MaxValue;
    private long _max;
    private double _sum;

    /// <summary>Number of recorded values.</summary>
    public long Count => _count;

    /// <summary>Smallest recorded value, or 0 when empty.</summary>
    public long Min => _count == 0 ? 0 : _min;

    /// <summary>Largest recorded value (exact), or 0 when empty.</summary>
    public long Max => _max;

    /// <summary>Arithmetic mean of the recorded values, or 0 when empty.</summary>
    public double Mean => _count == 0 ? 0 : _sum / _count;

    /// <summary>Records one value; negative values are recorded as 0.</summary>
    public void Record(long value)
    {
        if (value < 0)
        {
            value = 0;
        }

        _counts[IndexOf(value)]++;
        _count++;
        _sum += value;
        if (value < _min)
        {
            _min = value;
        }

        if (value > _max)
        {
            _max = value;
        }
    }

    /// <summary>Adds every value recorded in <paramref name="other"/> to this histogram.</summary>
    public void Add(LatencyHistogram other)
    {
        for (var i = 0; i < BucketCount; i++)
        {
            _counts[i] += other._counts[i];
        }

        _count += other._count;
        _sum += other._sum;
        _min = Math.Min(_min, other._min);
        _max = Math.Max(_max, other._max);
    }

    /// <summary>
    /// The value at <paramref name="percentile"/> (0..100): the highest value that falls into the
    /// same bucket as the value ranked there, never above the recorded maximum. 0 when empty.
    /// </summary>
    public long ValueAtPercentile(double percentile)
    {
        if (_count == 0)
        {
            return 0;
        }

        var rank = (long)Math.Ceiling(Math.Clamp(percentile, 0, 100) / 100.0 * _count);
        rank = Math.Max(rank, 1);
        long seen = 0;
        for (var i = 0; i < BucketCount; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return Math.Min(HighestInBucket(i), _max);
            }
        }

        return _max;
    }

    /// <summary>Non-empty buckets as (bucket index, count) pairs, for <see cref="AddBucket"/> in another process.</summary>
    public IReadOnlyList<long[]> Export()
    {
        var buckets = new List<long[]>();
        for (var i = 0; i < BucketCount; i++)
        {
            if (_counts[i] > 0)
            {
                buckets.Add([i, _counts[i]]);
            }
        }

        return buckets;
    }

    /// <summary>
    /// Adds <paramref name="count"/> values in bucket <paramref name="index"/> (from <see cref="Export"/>). The
    /// values are taken as the bucket's highest, so the mean and maximum are at most 1/64 above the true ones.
    /// </summary>
    public void AddBucket(int index, long count)
    {
        if ((uint)index >= BucketCount || count <= 0)
        {
            return;
        }

        var value = HighestInBucket(index);
        _counts[index] += count;
        _count += count;
        _sum += (double)value * count;
        _min = Math.Min(_min, value);
        _max = Math.Max(_max, value);
    }

    /// <summary>The bucket index of <paramref name="value"/>.</summary>
    internal static int IndexOf(long value)
    {
        if (value < LinearCount)
        {
            return (int)value;
        }

        var shift = 63 - BitOperations.LeadingZeroCount((ulong)value) - (LinearBits - 1);
        return LinearCount + (shift - 1) * HalfCount + (int)((value >> shift) - HalfCount);
    }

    /// <summary>The highest value that maps to bucket <paramref name="index"/>.</summary>
    internal static long HighestInBucket(int index)
    {
        if (index < LinearCount)
        {
            return index;
        }

        var offset = index - LinearCount;
        var shift = offset / HalfCount + 1;
        var lowest = (long)(offset % HalfCount + HalfCount) << shift;
        return lowest + ((1L << shift) - 1);
    }
}
