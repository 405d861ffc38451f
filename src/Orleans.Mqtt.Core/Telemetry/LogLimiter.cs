namespace Orleans.Mqtt.Telemetry;

/// <summary>
/// Keeps a log line whose rate a client controls (a dropped message, a refused filter) to one line per interval: the
/// first event is logged at once, the events of the next interval are only summed, and the sum is logged in one line
/// when the interval has passed (the next event or a timer's <see cref="TryTakeSuppressed"/>) or when its owner ends
/// (<see cref="TryTakeSuppressed"/> with <c>force</c>). The counts are exact; only the lines are fewer.
/// </summary>
/// <param name="timeProvider">The clock the interval is measured on.</param>
/// <param name="interval">The least time between two lines.</param>
public sealed class LogLimiter(TimeProvider timeProvider, TimeSpan interval)
{
    /// <summary>The interval the broker's limiters use.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(10);

    private readonly Lock _lock = new();
    private bool _logged;
    private long _lastLine;
    private long _suppressed;

    /// <summary>
    /// Records <paramref name="count"/> events. True when the caller logs a line now; then
    /// <paramref name="suppressed"/> is the number of earlier events no line reported yet (0 for the first).
    /// </summary>
    public bool TryEnter(long count, out long suppressed)
    {
        var now = timeProvider.GetTimestamp();
        lock (_lock)
        {
            if (_logged && timeProvider.GetElapsedTime(_lastLine, now) < interval)
            {
                _suppressed += count;
                suppressed = 0;
                return false;
            }

            _logged = true;
            _lastLine = now;
            suppressed = _suppressed;
            _suppressed = 0;
            return true;
        }
    }

    /// <summary>
    /// True when events went unreported and the interval since the last line has passed, or <paramref name="force"/>
    /// (the owner ends); <paramref name="suppressed"/> is their number, which the caller logs in one line.
    /// </summary>
    public bool TryTakeSuppressed(bool force, out long suppressed)
    {
        var now = timeProvider.GetTimestamp();
        lock (_lock)
        {
            suppressed = _suppressed;
            if (suppressed == 0 || (!force && timeProvider.GetElapsedTime(_lastLine, now) < interval))
            {
                suppressed = 0;
                return false;
            }

            _suppressed = 0;
            _lastLine = now;
            return true;
        }
    }
}
