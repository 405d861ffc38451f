namespace Orleans.Mqtt.Gateway;

/// <summary>
/// A gateway-wide budget for the lines every connection may write once (refused, closed by the server, bad input): a
/// client controls how many of them there are by opening connections, so a flood of short connections must not flood
/// the log. Lines within the budget (a burst, then a steady rate) are written; the rest are only counted (their events
/// are in the metrics), and the next written line is preceded by one line saying how many were held back.
/// </summary>
internal sealed class ConnectionLogBudget
{
    /// <summary>Lines per second written once the burst is used up.</summary>
    public const double LinesPerSecond = 20;

    /// <summary>Lines written at once before the rate applies.</summary>
    public const double Burst = 200;

    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly TokenBucket _bucket;
    private long _heldBack;

    public ConnectionLogBudget(TimeProvider time)
    {
        _time = time;
        _bucket = new TokenBucket(LinesPerSecond, Burst, time);
    }

    /// <summary>
    /// True when the caller writes its line now; then <paramref name="heldBack"/> is the number of lines held back since
    /// the last one written (0 when none), which the caller reports first.
    /// </summary>
    public bool TryWrite(out long heldBack)
    {
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            if (!_bucket.TryTake(now, 1))
            {
                _heldBack++;
                heldBack = 0;
                return false;
            }

            heldBack = _heldBack;
            _heldBack = 0;
            return true;
        }
    }
}
