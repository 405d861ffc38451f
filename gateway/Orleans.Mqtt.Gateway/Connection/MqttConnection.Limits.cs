using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

// What a client cannot make unbounded: how long one packet may take to arrive, and how many log lines its traffic makes.
internal sealed partial class MqttConnection
{
    private const long NoPartialPacket = long.MinValue;

    // When the first byte of the packet still being read arrived (NoPartialPacket when the input ends on a packet
    // boundary). Written by the read loop, read by the gateway's sweep.
    private long _partialPacketSince = NoPartialPacket;

    // Made at the first line each one limits: most connections never need them.
    private LogLimiter? _dropLog;
    private LogLimiter? _inputLog;

    /// <summary>
    /// Called by the read loop after each read: <paramref name="remaining"/> bytes of <paramref name="read"/> are the
    /// start of a packet not complete yet. A packet that began before this read keeps its start time; one that began
    /// in it starts now.
    /// </summary>
    private void TrackPartialPacket(long remaining, long read)
    {
        if (remaining == 0)
        {
            Volatile.Write(ref _partialPacketSince, NoPartialPacket);
        }
        else if (remaining < read || Volatile.Read(ref _partialPacketSince) == NoPartialPacket)
        {
            Volatile.Write(ref _partialPacketSince, _gateway.TimeProvider.GetTimestamp());
        }
    }

    /// <summary>Whether a packet whose first byte came has been incomplete for longer than <c>Mqtt:PacketReadTimeout</c>.</summary>
    private bool PartialPacketTimedOut(long now)
    {
        var since = Volatile.Read(ref _partialPacketSince);
        return since != NoPartialPacket && _gateway.TimeProvider.GetElapsedTime(since, now) > _gateway.Options.PacketReadTimeout;
    }

    /// <summary>Logs a message not sent to this client, at most one line per interval (the count is in the metric).</summary>
    private void LogDrop(Delivery delivery, DropReason reason)
    {
        if (Limiter(ref _dropLog).TryEnter(1, out var suppressed))
        {
            LogDeliveryDropped(_logger, _clientId, Remote, delivery.Message.Topic, delivery.Qos, reason.Tag(), suppressed);
        }
    }

    /// <summary>
    /// Whether a line this connection writes once (refused, closed, bad input) fits the gateway-wide budget; when lines
    /// were held back before it, one line says how many.
    /// </summary>
    private bool WithinConnectionLogBudget()
    {
        if (!_gateway.ConnectionLog.TryWrite(out var heldBack))
        {
            return false;
        }

        if (heldBack > 0)
        {
            LogConnectionLinesHeldBack(_logger, heldBack, ConnectionLogBudget.LinesPerSecond);
        }

        return true;
    }

    /// <summary>Whether a line about bad input from this client is logged now (at most one per interval).</summary>
    private bool ShouldLogBadInput() => Limiter(ref _inputLog).TryEnter(1, out _);

    /// <summary>
    /// Reports in one line each what the limiters held back, once their interval has passed or, with
    /// <paramref name="closing"/>, because the connection ends.
    /// </summary>
    private void FlushSuppressedLogs(bool closing)
    {
        if (_dropLog is { } drops && drops.TryTakeSuppressed(closing, out var dropped))
        {
            LogDeliveriesDroppedSummary(_logger, _clientId, Remote, dropped);
        }

        if (_inputLog is { } input && input.TryTakeSuppressed(closing, out var rejected))
        {
            LogRejectedSummary(_logger, _clientId, Remote, rejected);
        }
    }

    private LogLimiter Limiter(ref LogLimiter? field) =>
        Volatile.Read(ref field) ?? Interlocked.CompareExchange(ref field, new LogLimiter(_gateway.TimeProvider, LogLimiter.DefaultInterval), null) ?? field;
}
