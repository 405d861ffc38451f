using System.Threading.Tasks.Sources;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// A connection's queue of packets to write: any thread writes, one write loop reads. It holds no buffer until the
/// first write and a small one after, so an idle connection's queue costs a few hundred bytes where an unbounded
/// channel's first segment alone costs over a kilobyte (docs/benchmarks.md, memory per idle connection).
/// </summary>
/// <typeparam name="T">The queued item.</typeparam>
internal sealed class ConnectionOutbox<T> : IValueTaskSource<bool>
{
    private readonly Lock _lock = new();
    private Queue<T>? _items;
    private bool _completed;
    private bool _readerWaiting;
    private ManualResetValueTaskSourceCore<bool> _wait = new() { RunContinuationsAsynchronously = true };

    /// <summary>Queues <paramref name="item"/>; false once <see cref="Complete"/> was called.</summary>
    public bool TryWrite(T item)
    {
        lock (_lock)
        {
            if (_completed)
            {
                return false;
            }

            (_items ??= new Queue<T>(4)).Enqueue(item);
            if (!_readerWaiting)
            {
                return true;
            }

            _readerWaiting = false;
        }

        _wait.SetResult(true);
        return true;
    }

    /// <summary>No more writes: the reader drains what is queued, then <see cref="WaitToReadAsync"/> answers false.</summary>
    public void Complete()
    {
        lock (_lock)
        {
            if (_completed)
            {
                return;
            }

            _completed = true;
            if (!_readerWaiting)
            {
                return;
            }

            // A waiting reader found the queue empty, so there is nothing left for it.
            _readerWaiting = false;
        }

        _wait.SetResult(false);
    }

    /// <summary>True when an item can be read; false when the outbox is completed and empty. One reader at a time.</summary>
    public ValueTask<bool> WaitToReadAsync()
    {
        lock (_lock)
        {
            if (_items is { Count: > 0 })
            {
                return new ValueTask<bool>(true);
            }

            if (_completed)
            {
                return new ValueTask<bool>(false);
            }

            _wait.Reset();
            _readerWaiting = true;
            return new ValueTask<bool>(this, _wait.Version);
        }
    }

    /// <summary>Takes the oldest queued item, if any.</summary>
    public bool TryRead(out T item)
    {
        lock (_lock)
        {
            if (_items is { Count: > 0 } items)
            {
                item = items.Dequeue();
                if (items.Count == 0 && items.EnsureCapacity(0) > 64)
                {
                    // A burst grew the queue; an idle connection does not keep that memory.
                    items.TrimExcess();
                }

                return true;
            }
        }

        item = default!;
        return false;
    }

    bool IValueTaskSource<bool>.GetResult(short token) => _wait.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _wait.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _wait.OnCompleted(continuation, state, token, flags);
}
