namespace Orleans.Mqtt.Gateway;

/// <summary>
/// A connection's queue of packets to write: any thread writes, and a drain started on demand reads. An idle
/// connection has no drain waiting on it (no parked loop, task or buffer): the write that finds no drain running is
/// told to start one, and the drain ends when it finds the queue empty (docs/benchmarks.md, memory per idle connection).
/// The oldest queued item has a slot of its own, so a connection whose writes come one at a time (an idle client's
/// CONNACK, SUBACK and PINGRESPs) never allocates the queue behind it.
/// </summary>
/// <typeparam name="T">The queued item.</typeparam>
/// <remarks>
/// The outbox also keeps the sum of the queued items' <see cref="WeightOf"/> (the bytes a delivery holds), updated
/// under the same lock as the queue, so the sum is exact whatever thread writes, reads or stops.
/// </remarks>
internal class ConnectionOutbox<T>
{
    private readonly Lock _lock = new();

    // The oldest item when _hasOldest; the items after it in _later, which is empty whenever _hasOldest is false.
    private T _oldest = default!;
    private bool _hasOldest;
    private Queue<T>? _later;
    private bool _completed;
    private bool _draining;
    private TaskCompletionSource? _drainEnded;
    private long _queuedWeight;

    /// <summary>The sum of <see cref="WeightOf"/> over the items queued and not yet read.</summary>
    public long QueuedWeight => Volatile.Read(ref _queuedWeight);

    /// <summary>
    /// Queues <paramref name="item"/>; false once the outbox is completed or stopped. <paramref name="startDrain"/> is
    /// true for the one write that finds no drain running: its caller starts the drain.
    /// </summary>
    public bool TryWrite(T item, out bool startDrain) => TryWrite(item, long.MaxValue, out startDrain, out _);

    /// <summary>
    /// Queues <paramref name="item"/> unless the outbox is completed or stopped, or unless the item would take
    /// <see cref="QueuedWeight"/> over <paramref name="maxQueuedWeight"/> (<paramref name="overBudget"/>). An item goes
    /// into an outbox that holds no weight whatever it weighs, so one message larger than the budget still reaches a
    /// client that keeps up. <paramref name="startDrain"/> is as for <see cref="TryWrite(T, out bool)"/>.
    /// </summary>
    public bool TryWrite(T item, long maxQueuedWeight, out bool startDrain, out bool overBudget)
    {
        lock (_lock)
        {
            startDrain = false;
            overBudget = false;
            if (_completed)
            {
                return false;
            }

            var weight = WeightOf(item);
            if (weight > 0 && _queuedWeight > 0 && _queuedWeight + weight > maxQueuedWeight)
            {
                overBudget = true;
                return false;
            }

            _queuedWeight += weight;
            if (_hasOldest)
            {
                (_later ??= new Queue<T>(4)).Enqueue(item);
            }
            else
            {
                _oldest = item;
                _hasOldest = true;
            }

            if (!_draining)
            {
                _draining = true;
                startDrain = true;
            }

            return true;
        }
    }

    /// <summary>Takes the oldest queued item, if any. Called by the running drain only.</summary>
    public bool TryRead(out T item)
    {
        lock (_lock)
        {
            if (!_hasOldest)
            {
                item = default!;
                return false;
            }

            item = _oldest;
            _queuedWeight -= WeightOf(item);
            if (_later is { Count: > 0 } later)
            {
                _oldest = later.Dequeue();
                if (later.Count == 0 && later.EnsureCapacity(0) > 64)
                {
                    // A burst grew the queue; an idle connection does not keep that memory.
                    later.TrimExcess();
                }
            }
            else
            {
                _oldest = default!;
                _hasOldest = false;
            }

            return true;
        }
    }

    /// <summary>
    /// Called by the drain once <see cref="TryRead"/> found nothing and what it read is written: true when the drain
    /// ends (the next write starts another), false when items arrived meanwhile and the drain goes on.
    /// </summary>
    public bool TryEndDrain()
    {
        TaskCompletionSource? ended;
        lock (_lock)
        {
            if (_hasOldest)
            {
                return false;
            }

            _draining = false;
            ended = _drainEnded;
        }

        ended?.TrySetResult();
        return true;
    }

    /// <summary>
    /// Ends the drain for good (the connection's output is closed or failed): what is queued is dropped (the queue's
    /// array too, so nothing it referenced stays reachable from the connection), and later writes are refused.
    /// Returns the summed <see cref="WeightOf"/> of the dropped items.
    /// </summary>
    public long Stop()
    {
        TaskCompletionSource? ended;
        long dropped;
        lock (_lock)
        {
            _completed = true;
            _draining = false;
            _oldest = default!;
            _hasOldest = false;
            _later = null;
            dropped = _queuedWeight;
            _queuedWeight = 0;
            ended = _drainEnded;
        }

        ended?.TrySetResult();
        return dropped;
    }

    /// <summary>
    /// Refuses later writes; completes once a running drain has written what was queued before (at once when none runs).
    /// </summary>
    public Task CompleteAsync()
    {
        lock (_lock)
        {
            _completed = true;
            if (!_draining)
            {
                return Task.CompletedTask;
            }

            return (_drainEnded ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
    }

    /// <summary>What one queued item weighs in <see cref="QueuedWeight"/>; nothing unless a subclass says otherwise.</summary>
    protected virtual long WeightOf(T item) => 0;
}
