namespace Orleans.Mqtt.Grains;

/// <summary>
/// When this silo last saw a silo leave the active silos (<see cref="PushRetryOnSiloLoss"/> raises it), and a wait for
/// the next time (<see cref="SiloLossGrain"/>).
/// </summary>
internal sealed class SiloLossSignal(TimeProvider timeProvider)
{
    // Added to the caller's lostAgo: the time its call took to get here, and the difference between the moment the
    // gateway saw its connection close and the moment this silo counted it.
    internal static readonly TimeSpan Slack = TimeSpan.FromMilliseconds(500);

    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _last = long.MinValue;

    /// <summary>A silo left the active silos: noted, and the waits under way end.</summary>
    public void Raise()
    {
        // The time first, then the wait's end: a waiter that reads the wait before the time sees one or the other.
        Volatile.Write(ref _last, timeProvider.GetTimestamp());
        Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>See <see cref="ISiloLossGrain.WaitForSiloLoss"/>.</summary>
    public async Task<bool> WaitAsync(TimeSpan lostAgo, TimeSpan timeout)
    {
        var next = Volatile.Read(ref _next);
        var last = Volatile.Read(ref _last);
        if (last != long.MinValue && timeProvider.GetElapsedTime(last) <= lostAgo + Slack)
        {
            return true;
        }

        try
        {
            await next.Task.WaitAsync(timeout, timeProvider);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }
}
