namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The bounds of the grain calls a client waits on, shared by the calls that start close together: a call gets a
/// deadline that ends between <c>bound</c> and <c>bound</c> + <c>bound</c> / <see cref="Slices"/> after it started, and
/// that is cut short with the calls under way when the gateway loses a silo (<see cref="SiloLossWatch.CallsInFlight"/>).
/// One timer and one token source per slice of time, not a token source with a timer and a linked one per call: a
/// connect with its SUBSCRIBE made two of each, and every QoS 1 publish batch one.
/// </summary>
internal sealed class CallDeadlines(TimeProvider timeProvider, SiloLossWatch siloLoss)
{
    /// <summary>Into how many slices a bound is cut: calls starting within one slice share a deadline.</summary>
    internal const int Slices = 8;

    private readonly Lock _gate = new();
    private CallDeadline? _current;

    /// <summary>A deadline for a call starting now, bounded by <paramref name="bound"/>.</summary>
    public CallDeadline Next(TimeSpan bound)
    {
        var now = timeProvider.GetTimestamp();
        var lost = siloLoss.CallsInFlight;
        var current = Volatile.Read(ref _current);
        if (current is not null && current.Accepts(now, bound, lost))
        {
            return current;
        }

        lock (_gate)
        {
            current = _current;
            if (current is null || !current.Accepts(now, bound, lost))
            {
                current = new CallDeadline(timeProvider, now, bound, lost);
                Volatile.Write(ref _current, current);
            }

            return current;
        }
    }
}

/// <summary>
/// One shared deadline (<see cref="CallDeadlines"/>): its <see cref="Token"/> is cancelled when the bound has passed for
/// the last call that joined it (<see cref="TimedOut"/>), or when <see cref="Lost"/> is.
/// </summary>
internal sealed class CallDeadline
{
    private readonly long _joinUntil;
    private readonly TimeSpan _bound;
    private readonly CancellationTokenSource _source;
    private readonly ITimer _timer;
    private volatile bool _timedOut;

    public CallDeadline(TimeProvider timeProvider, long now, TimeSpan bound, CancellationToken lost)
    {
        var slice = bound / CallDeadlines.Slices;
        _bound = bound;
        _joinUntil = now + (long)(slice.TotalSeconds * timeProvider.TimestampFrequency);
        Lost = lost;
        _source = CancellationTokenSource.CreateLinkedTokenSource(lost);
        Token = _source.Token;
        _timer = timeProvider.CreateTimer(static state => ((CallDeadline)state!).Expire(), this, bound + slice, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Cancelled when the bound has passed, or when <see cref="Lost"/> is.</summary>
    public CancellationToken Token { get; }

    /// <summary>The silo-loss token of the calls that share this deadline.</summary>
    public CancellationToken Lost { get; }

    /// <summary>Whether the bound passed (rather than the gateway losing a silo).</summary>
    public bool TimedOut => _timedOut;

    /// <summary>Whether a call starting at <paramref name="now"/> with these bounds can share this deadline.</summary>
    public bool Accepts(long now, TimeSpan bound, CancellationToken lost) => now < _joinUntil && bound == _bound && lost == Lost;

    private void Expire()
    {
        _timedOut = true;
        _source.Cancel();

        // Nothing joins a deadline past its slice, so nothing registers on it any more: this drops its registration on
        // the silo-loss token, which lives as long as no silo is lost.
        _source.Dispose();
        _timer.Dispose();
    }
}
