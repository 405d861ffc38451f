namespace Orleans.Mqtt.Gateway;

/// <summary>
/// One connection's publish limits, <c>Mqtt:Limits:MessagesPerSecond</c> and <c>Mqtt:Limits:BytesPerSecond</c>: a
/// PUBLISH passes when both buckets allow it, and then takes from both. Used by the connection's read loop only.
/// </summary>
internal sealed class PublishRateLimit
{
    private readonly TokenBucket? _messages;
    private readonly TokenBucket? _bytes;

    private PublishRateLimit(LimitsOptions limits, TimeProvider time)
    {
        if (limits.MessagesPerSecond > 0)
        {
            _messages = new TokenBucket(limits.MessagesPerSecond, limits.MessageBurst, time);
        }

        if (limits.BytesPerSecond > 0)
        {
            _bytes = new TokenBucket(limits.BytesPerSecond, limits.ByteBurst, time);
        }
    }

    /// <summary>The limits of a new connection, or null when neither rate is set.</summary>
    public static PublishRateLimit? Create(LimitsOptions limits, TimeProvider time) =>
        limits.MessagesPerSecond > 0 || limits.BytesPerSecond > 0 ? new PublishRateLimit(limits, time) : null;

    /// <summary>Whether a PUBLISH of <paramref name="payloadBytes"/> may pass at <paramref name="now"/>; if so it is counted.</summary>
    public bool TryAcquire(long now, int payloadBytes)
    {
        if ((_messages is { } messages && !messages.CanTake(now, 1)) || (_bytes is { } bytes && !bytes.CanTake(now, payloadBytes)))
        {
            return false;
        }

        _messages?.Take(1);
        _bytes?.Take(payloadBytes);
        return true;
    }

    /// <summary>How long from <paramref name="now"/> until a PUBLISH of <paramref name="payloadBytes"/> may pass.</summary>
    public TimeSpan TimeUntilAllowed(long now, int payloadBytes)
    {
        var messages = _messages?.TimeUntil(now, 1) ?? TimeSpan.Zero;
        var bytes = _bytes?.TimeUntil(now, payloadBytes) ?? TimeSpan.Zero;
        return messages > bytes ? messages : bytes;
    }
}
