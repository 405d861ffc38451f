using System.Diagnostics;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// A subscribing client: checks each delivery's payload header, accounts it per publisher (loss,
/// duplicates, order), records its latency and tells a publisher of the same run that its message
/// arrived. Runs on the connection's receive loop, one delivery at a time.
/// </summary>
internal sealed class BenchSubscriber : BenchClient
{
    private static readonly double NanosPerTick = 1_000_000_000.0 / Stopwatch.Frequency;

    private readonly TrackerSet _trackers;
    private readonly BenchPublisher[]? _publishers;
    private readonly LatencyHistogram _latency = new();
    private readonly LatencyHistogram _sendLatency = new();
    private long[] _lastSequence = [];
    private long _delivered;
    private long _outOfOrder;
    private long _malformed;

    /// <summary>Creates subscriber <paramref name="index"/>.</summary>
    /// <param name="index">Subscriber index.</param>
    /// <param name="filter">Topic filter it subscribes.</param>
    /// <param name="options">Run settings.</param>
    /// <param name="trackers">Where deliveries are accounted: its own set, or one shared by a shared subscription group.</param>
    /// <param name="publishers">Publishers of the same run, told about each first delivery; null when they run elsewhere.</param>
    /// <param name="state">Shared run state.</param>
    public BenchSubscriber(int index, string filter, BenchOptions options, TrackerSet trackers, BenchPublisher[]? publishers, RunState state)
        : base(state, $"subscriber {index}", options.ProtocolLevel, 64 * 1024)
    {
        Index = index;
        Filter = filter;
        _trackers = trackers;
        _publishers = publishers;
    }

    /// <summary>Subscriber index.</summary>
    public int Index { get; }

    /// <summary>The filter it subscribes.</summary>
    public string Filter { get; }

    /// <summary>Where this subscriber's deliveries are accounted.</summary>
    public TrackerSet Trackers => _trackers;

    /// <summary>Deliveries with a valid bench header, duplicates included.</summary>
    public long Delivered => Volatile.Read(ref _delivered);

    /// <summary>Deliveries whose payload was not a bench payload.</summary>
    public long Malformed => Volatile.Read(ref _malformed);

    /// <summary>
    /// Out-of-order first deliveries as seen by this subscriber alone; differs from the trackers' count
    /// only in a shared subscription group, where the group's messages are spread over its members.
    /// </summary>
    public long OutOfOrder => Volatile.Read(ref _outOfOrder);

    /// <summary>Latency of first deliveries of messages sent in the measured interval, in nanoseconds; read it after the run.</summary>
    public LatencyHistogram Latency => _latency;

    /// <summary>The same deliveries' latency from their actual send, without the time a message waited for its turn.</summary>
    public LatencyHistogram SendLatency => _sendLatency;

    /// <inheritdoc />
    protected override void OnPublish(ReadOnlySpan<byte> payload, int qos)
    {
        var now = Stopwatch.GetTimestamp();
        if (!PayloadHeader.TryRead(payload, out var header) || (uint)header.Publisher >= TrackerSet.MaxPublishers)
        {
            Volatile.Write(ref _malformed, _malformed + 1);
            return;
        }

        Volatile.Write(ref _delivered, _delivered + 1);
        var outcome = _trackers.Record(header.Publisher, header.Sequence);
        if (outcome is not (DeliveryOutcome.InOrder or DeliveryOutcome.OutOfOrder))
        {
            return;
        }

        if (IsBehind(header.Publisher, header.Sequence))
        {
            Volatile.Write(ref _outOfOrder, _outOfOrder + 1);
        }

        if (header.Timestamp >= State.MeasureStartTicks)
        {
            _latency.Record((long)((now - header.Timestamp) * NanosPerTick));
            _sendLatency.Record((long)((now - header.Sent) * NanosPerTick));
        }

        var publishers = _publishers;
        if (publishers is not null && (uint)header.Publisher < (uint)publishers.Length)
        {
            publishers[header.Publisher].OnDelivered(header.Sequence);
        }
    }

    // Order as this subscriber sees it: a first delivery below the highest it got from that publisher.
    private bool IsBehind(int publisher, long sequence)
    {
        if (publisher >= _lastSequence.Length)
        {
            var grown = new long[Math.Max(publisher + 1, _lastSequence.Length * 2)];
            grown.AsSpan(_lastSequence.Length).Fill(-1);
            _lastSequence.CopyTo(grown, 0);
            _lastSequence = grown;
        }

        if (sequence < _lastSequence[publisher])
        {
            return true;
        }

        _lastSequence[publisher] = sequence;
        return false;
    }
}

/// <summary>
/// Delivery trackers of one subscriber (or one shared subscription group), indexed by publisher.
/// A set shared by several subscribers is locked per publisher; a private one is not.
/// </summary>
internal sealed class TrackerSet(bool shared)
{
    /// <summary>Publisher indexes at or above this are treated as malformed.</summary>
    public const int MaxPublishers = 1 << 20;

    private readonly Lock _growLock = new();
    private DeliveryTracker?[] _trackers = [];

    /// <summary>True when several subscribers record into this set.</summary>
    public bool Shared => shared;

    /// <summary>The tracker of <paramref name="publisher"/>, or null when nothing arrived from it.</summary>
    public DeliveryTracker? this[int publisher]
    {
        get
        {
            var trackers = Volatile.Read(ref _trackers);
            return (uint)publisher < (uint)trackers.Length ? trackers[publisher] : null;
        }
    }

    /// <summary>Publishers something arrived from, each with its tracker.</summary>
    public IEnumerable<(int Publisher, DeliveryTracker Tracker)> All
    {
        get
        {
            var trackers = Volatile.Read(ref _trackers);
            for (var i = 0; i < trackers.Length; i++)
            {
                if (trackers[i] is { } tracker)
                {
                    yield return (i, tracker);
                }
            }
        }
    }

    /// <summary>Accounts one delivery from <paramref name="publisher"/>.</summary>
    public DeliveryOutcome Record(int publisher, long sequence)
    {
        var tracker = this[publisher] ?? Add(publisher);
        if (!shared)
        {
            return tracker.Record(sequence);
        }

        lock (tracker)
        {
            return tracker.Record(sequence);
        }
    }

    private DeliveryTracker Add(int publisher)
    {
        lock (_growLock)
        {
            var trackers = _trackers;
            if (publisher >= trackers.Length)
            {
                var grown = new DeliveryTracker?[Math.Max(publisher + 1, trackers.Length * 2)];
                trackers.CopyTo(grown, 0);
                trackers = grown;
            }

            var tracker = trackers[publisher] ??= new DeliveryTracker();
            Volatile.Write(ref _trackers, trackers);
            return tracker;
        }
    }
}
