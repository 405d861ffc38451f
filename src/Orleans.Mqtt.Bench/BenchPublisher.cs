using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// A publishing client. Its window is a ring of slots, one per message in flight: a slot is taken when
/// the message is written and freed once the broker acknowledged it (QoS 1: PUBACK, QoS 2: PUBCOMP) and
/// every subscriber of this run that should get it did. The slot index is also the packet id, so an
/// acknowledgement finds its slot without a lookup. The send loop writes as many due messages as
/// free slots allow in one socket send.
/// </summary>
internal sealed class BenchPublisher : BenchClient
{
    // Slot layout: sequence number above bit 21, "acknowledgement outstanding" at bit 20,
    // deliveries outstanding in the low 20 bits.
    private const int SequenceShift = 21;
    private const long AckBit = 1L << 20;
    private const long DeliveryMask = AckBit - 1;
    private const long BusyMask = AckBit | DeliveryMask;
    private const int BatchBytes = 32 * 1024;
    private static readonly long WaitStep = Stopwatch.Frequency / 4;

    private readonly byte[] _topic;
    private readonly int _qos;
    private readonly int _window;
    private readonly int _payloadSize;
    private readonly long _stallTimeout;
    private readonly long[] _slots;
    private readonly byte[] _batch;
    private readonly AsyncSignal _wake = new();
    private int _waitingSlot = -1;
    private long _wakeAt = long.MaxValue;
    private long _published;
    private long _publishErrors;
    private long _stalls;
    private long _next;

    /// <summary>Creates a publisher of <paramref name="index"/> on <paramref name="topic"/>.</summary>
    /// <param name="index">Publisher index, carried in every payload.</param>
    /// <param name="topic">Topic name.</param>
    /// <param name="options">Run settings: QoS, window, payload size, protocol.</param>
    /// <param name="state">Shared run state.</param>
    public BenchPublisher(int index, string topic, BenchOptions options, RunState state)
        : base(state, $"publisher {index}", options.ProtocolLevel, 4096)
    {
        Index = index;
        Topic = topic;
        _topic = MqttWire.EncodeString(topic);
        _qos = options.Qos;
        _window = options.Window;
        _payloadSize = options.Size;
        _stallTimeout = (long)((options.Qos == 0 ? 1 : options.ConnectTimeout.TotalSeconds) * Stopwatch.Frequency);
        _slots = new long[options.Window];
        var messageLength = MqttWire.PublishLength(options.ProtocolLevel, _topic.Length, _qos, _payloadSize);
        _batch = new byte[Math.Max(BatchBytes, messageLength)];
    }

    /// <summary>Publisher index, carried in every payload.</summary>
    public int Index { get; }

    /// <summary>The topic this publisher publishes on.</summary>
    public string Topic { get; }

    /// <summary>Deliveries to subscribers of this run that, with the acknowledgement, free a slot (0 when none are watched). Set before publishing.</summary>
    public int ExpectedDeliveries { get; set; }

    /// <summary>Publishes accepted: acknowledged at QoS 1/2, written to the connection at QoS 0.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Publishes that the broker refused (reason code 0x80 or above).</summary>
    public long PublishErrors => Interlocked.Read(ref _publishErrors);

    /// <summary>Times a slot was given up because a subscriber never got its message within the stall timeout.</summary>
    public long Stalls => Interlocked.Read(ref _stalls);

    /// <summary>True while QoS 1/2 acknowledgements are outstanding.</summary>
    public bool AwaitingAcknowledgements
    {
        get
        {
            for (var i = 0; i < _slots.Length; i++)
            {
                if ((Volatile.Read(ref _slots[i]) & AckBit) != 0)
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>
    /// Publishes until <paramref name="stop"/> fires or the connection ends. Closed loop keeps up to the
    /// window in flight; with <paramref name="ticksPerMessage"/> above 0 messages are also scheduled at that
    /// interval from <paramref name="startTicks"/> and stamped with their scheduled time, so a tool or broker
    /// that falls behind shows up as latency.
    /// </summary>
    public async Task PublishLoopAsync(long startTicks, double ticksPerMessage, CancellationToken stop)
    {
        using var wakeOnStop = stop.UnsafeRegister(static state => ((AsyncSignal)state!).Set(), _wake);
        try
        {
            while (!stop.IsCancellationRequested && IsConnected)
            {
                var slot = (int)(_next % _window);
                if ((Volatile.Read(ref _slots[slot]) & BusyMask) != 0 && !await WaitForSlotAsync(slot, stop).ConfigureAwait(false))
                {
                    return;
                }

                var (length, count, nextDue) = FillBatch(startTicks, ticksPerMessage);
                if (count == 0)
                {
                    // Nothing due yet: the run's ticker wakes this loop when the next message is due.
                    Volatile.Write(ref _wakeAt, nextDue);
                    await _wake.WaitAsync().ConfigureAwait(false);
                    continue;
                }

                await SendAsync(_batch.AsMemory(0, length)).ConfigureAwait(false);
                if (_qos == 0)
                {
                    Interlocked.Add(ref _published, count);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (Exception exception) when (exception is System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            // The receive loop reports the dropped connection.
        }
    }

    /// <summary>
    /// Called by the run's ticker about once a millisecond: wakes the send loop when its next message is
    /// due or when it has waited a while for a slot (to check for stalls and dropped connections).
    /// </summary>
    public void Tick(long now)
    {
        if (now >= Volatile.Read(ref _wakeAt))
        {
            Volatile.Write(ref _wakeAt, long.MaxValue);
            _wake.Set();
        }
    }

    /// <summary>A subscriber of this run received <paramref name="sequence"/> for the first time.</summary>
    public void OnDelivered(long sequence)
    {
        var slot = (int)(sequence % _window);
        ref var value = ref _slots[slot];
        while (true)
        {
            var current = Volatile.Read(ref value);
            if (current >> SequenceShift != sequence || (current & DeliveryMask) == 0)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref value, current - 1, current) == current)
            {
                if (((current - 1) & BusyMask) == 0)
                {
                    Wake(slot);
                }

                return;
            }
        }
    }

    /// <inheritdoc />
    protected override void OnAcknowledged(ushort packetId, byte reason)
    {
        if (reason < 0x80)
        {
            Interlocked.Increment(ref _published);
        }
        else
        {
            Interlocked.Increment(ref _publishErrors);
            State.Report($"{Name}: publish refused with reason 0x{reason:X2}");
        }

        var slot = packetId - 1;
        if ((uint)slot >= (uint)_window)
        {
            return;
        }

        ref var value = ref _slots[slot];
        while (true)
        {
            var current = Volatile.Read(ref value);
            if ((current & AckBit) == 0)
            {
                return;
            }

            // A refused message will not be delivered: its slot is free at once.
            var next = reason < 0x80 ? current & ~AckBit : current & ~BusyMask;
            if (Interlocked.CompareExchange(ref value, next, current) == current)
            {
                if ((next & BusyMask) == 0)
                {
                    Wake(slot);
                }

                return;
            }
        }
    }

    private (int Length, int Count, long NextDue) FillBatch(long startTicks, double ticksPerMessage)
    {
        var span = _batch.AsSpan();
        var length = 0;
        var count = 0;
        var now = Stopwatch.GetTimestamp();
        var messageLength = MqttWire.PublishLength(Version, _topic.Length, _qos, _payloadSize);
        var outstanding = (_qos > 0 ? AckBit : 0) | (long)ExpectedDeliveries;
        while (length + messageLength <= span.Length)
        {
            var sequence = _next;
            var slot = (int)(sequence % _window);
            if ((Volatile.Read(ref _slots[slot]) & BusyMask) != 0)
            {
                break;
            }

            var timestamp = now;
            if (ticksPerMessage > 0)
            {
                timestamp = startTicks + (long)(sequence * ticksPerMessage);
                if (timestamp > now)
                {
                    return (length, count, timestamp);
                }
            }

            Volatile.Write(ref _slots[slot], (sequence << SequenceShift) | outstanding);
            var message = span[length..];
            var header = MqttWire.WritePublishHeader(message, Version, _topic, _qos, (ushort)(slot + 1), _payloadSize);
            var payload = message.Slice(header, _payloadSize);
            new PayloadHeader(Index, sequence, timestamp, now).WriteTo(payload);
            payload[PayloadHeader.Size..].Fill((byte)'.');
            length += header + _payloadSize;
            count++;
            _next = sequence + 1;
        }

        return (length, count, now);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> WaitForSlotAsync(int slot, CancellationToken stop)
    {
        var waitStart = Stopwatch.GetTimestamp();
        while (true)
        {
            Volatile.Write(ref _waitingSlot, slot);
            var current = Volatile.Read(ref _slots[slot]);
            if ((current & BusyMask) == 0)
            {
                Interlocked.Exchange(ref _waitingSlot, -1);
                return true;
            }

            if (!IsConnected || stop.IsCancellationRequested)
            {
                return false;
            }

            var now = Stopwatch.GetTimestamp();
            if (now - waitStart < _stallTimeout)
            {
                Volatile.Write(ref _wakeAt, now + WaitStep);
                await _wake.WaitAsync().ConfigureAwait(false);
                continue;
            }

            // Deliveries that did not come within the stall timeout are given up (they count as lost);
            // an outstanding acknowledgement keeps the slot: its packet id is still in use.
            if ((current & DeliveryMask) != 0 && Interlocked.CompareExchange(ref _slots[slot], current & ~DeliveryMask, current) == current)
            {
                Interlocked.Increment(ref _stalls);
            }

            waitStart = now;
        }
    }

    private void Wake(int slot)
    {
        if (Volatile.Read(ref _waitingSlot) == slot && Interlocked.CompareExchange(ref _waitingSlot, -1, slot) == slot)
        {
            _wake.Set();
        }
    }
}
