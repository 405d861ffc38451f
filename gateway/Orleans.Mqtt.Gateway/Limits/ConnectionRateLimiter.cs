namespace Orleans.Mqtt.Gateway;

/// <summary>
/// <c>Mqtt:Limits:ConnectionsPerSecond</c>: one token bucket per listener, taken from when a connection is accepted,
/// before any byte of it is read.
/// </summary>
internal sealed class ConnectionRateLimiter
{
    private readonly TimeProvider _time;
    private readonly TokenBucket?[] _buckets = new TokenBucket?[3];
    private readonly Lock _lock = new();

    public ConnectionRateLimiter(LimitsOptions limits, TimeProvider time)
    {
        _time = time;
        if (limits.ConnectionsPerSecond > 0)
        {
            for (var i = 0; i < _buckets.Length; i++)
            {
                _buckets[i] = new TokenBucket(limits.ConnectionsPerSecond, limits.ConnectionBurst, time);
            }
        }
    }

    /// <summary>Whether a connection just accepted on <paramref name="listener"/> is within the listener's rate.</summary>
    public bool TryAccept(MqttListener listener)
    {
        if (_buckets[(int)listener] is not { } bucket)
        {
            return true;
        }

        var now = _time.GetTimestamp();
        lock (_lock)
        {
            return bucket.TryTake(now, 1);
        }
    }
}
