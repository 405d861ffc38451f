namespace Orleans.Mqtt.Gateway;

/// <summary>
/// A token bucket on <see cref="TimeProvider"/> timestamps, refilled from the elapsed time whenever it is asked: no
/// timer, no lock, no allocation per call. One thread uses it at a time (a connection's read loop; the per-listener
/// <see cref="ConnectionRateLimiter"/> takes a lock around it).
/// </summary>
/// <remarks>
/// System.Threading.RateLimiting's <c>TokenBucketRateLimiter</c> was not used on the per-message path: it reads
/// <c>Stopwatch</c> instead of a <see cref="TimeProvider"/> (so it cannot be tested on a fake clock, which the gateway's
/// other timeouts are), either needs a timer per instance (<c>AutoReplenishment</c>) or an outside caller of
/// <c>TryReplenish</c>, takes a lock per call, and refuses outright a request larger than its limit, where a byte rate
/// must let a packet larger than the burst through now and then. Neither allocates on a granted check; this one costs
/// about 35 ns against about 85 ns (<c>RateLimiterBenchmarks</c>, docs/benchmarks.md).
/// </remarks>
internal sealed class TokenBucket
{
    // Refilling adds fractions of a token: a millionth of one is the rounding the comparisons forgive, so that, say,
    // a hundred refills of 0.01 make the token they add up to.
    private const double Tolerance = 1e-6;

    private readonly double _perSecond;
    private readonly double _perTimestampTick;
    private double _tokens;
    private long _refilledAt;

    /// <summary>A full bucket of <paramref name="burst"/> tokens (0: one second's worth, at least 1) refilled at <paramref name="perSecond"/>.</summary>
    public TokenBucket(double perSecond, double burst, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(perSecond);
        _perSecond = perSecond;
        _perTimestampTick = perSecond / time.TimestampFrequency;
        Capacity = burst > 0 ? burst : Math.Max(perSecond, 1);
        _tokens = Capacity;
        _refilledAt = time.GetTimestamp();
    }

    /// <summary>The most tokens the bucket holds.</summary>
    public double Capacity { get; }

    /// <summary>
    /// Whether <paramref name="count"/> tokens may be taken at <paramref name="now"/>: the bucket holds them, or, for a
    /// count larger than the capacity, it is full (taking them then leaves it in debt, paid back at the rate).
    /// </summary>
    public bool CanTake(long now, double count)
    {
        Refill(now);
        return _tokens + Tolerance >= Math.Min(count, Capacity);
    }

    /// <summary>Takes <paramref name="count"/> tokens; call after <see cref="CanTake"/> said yes.</summary>
    public void Take(double count) => _tokens -= count;

    /// <summary><see cref="CanTake"/> and, when it says yes, <see cref="Take"/>.</summary>
    public bool TryTake(long now, double count)
    {
        if (!CanTake(now, count))
        {
            return false;
        }

        Take(count);
        return true;
    }

    /// <summary>How long from <paramref name="now"/> until <see cref="CanTake"/> says yes for <paramref name="count"/>.</summary>
    public TimeSpan TimeUntil(long now, double count)
    {
        Refill(now);
        var missing = Math.Min(count, Capacity) - _tokens;
        return missing <= 0 ? TimeSpan.Zero : TimeSpan.FromTicks((long)Math.Ceiling(missing / _perSecond * TimeSpan.TicksPerSecond));
    }

    private void Refill(long now)
    {
        var elapsed = now - _refilledAt;
        if (elapsed > 0)
        {
            _tokens = Math.Min(Capacity, _tokens + (elapsed * _perTimestampTick));
            _refilledAt = now;
        }
    }
}
