using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The input of a <see cref="SocketConnection"/>: a pipe reader straight over the socket. Unread bytes sit in one
/// contiguous pooled array (a packet is always one segment, which the connection decodes without copying); the array
/// goes back to the pool as soon as everything in it is consumed, so an idle connection holds none. Waiting for data is
/// a zero-byte receive, which completes when the socket becomes readable without taking a buffer.
/// </summary>
/// <remarks>
/// One reader at a time, as for any <see cref="PipeReader"/>. The state the socket's completion and
/// <see cref="CancelPendingRead"/> share with the reader is guarded by the receive arguments' monitor; the buffer is
/// touched by the completion only while a read waits, when the reader does not touch it.
/// </remarks>
internal sealed class SocketInput : PipeReader, IValueTaskSource<ReadResult>
{
    /// <summary>What one receive asks for at first; the array doubles while a packet does not fit.</summary>
    public const int ReceiveSize = 4096;

    private readonly SocketConnection _connection;
    private readonly Receiver _receiver;
    private ManualResetValueTaskSourceCore<ReadResult> _pending = new() { RunContinuationsAsynchronously = true };
    private byte[]? _buffer;
    private int _start;
    private int _end;
    private int _examined;
    private bool _waiting;
    private bool _receivePending;
    private bool _readable;
    private bool _busy;
    private bool _cancelRequested;
    private bool _ended;
    private bool _completed;
    private SocketError _error;

    public SocketInput(SocketConnection connection)
    {
        _connection = connection;
        _receiver = new Receiver(this);
    }

    private ReadOnlySequence<byte> Unread => _buffer is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(_buffer, _start, _end - _start);

    /// <summary>Whether a pooled array is held now (an idle connection holds none).</summary>
    public bool HoldsBuffer => _buffer is not null;

    /// <inheritdoc />
    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        // A token would need a registration per read; the connection stops a read with CancelPendingRead instead.
        cancellationToken.ThrowIfCancellationRequested();
        lock (_receiver)
        {
            ObjectDisposedException.ThrowIf(_completed, this);
            if (_cancelRequested)
            {
                _cancelRequested = false;
                return new ValueTask<ReadResult>(new ReadResult(Unread, isCanceled: true, isCompleted: false));
            }

            while (true)
            {
                if (TryGetResult(out var result))
                {
                    return new ValueTask<ReadResult>(result);
                }

                // A busy connection (its last receive took bytes) often has more by the time the reader is back: a
                // receive without waiting then saves the zero-byte receive and its wake-up.
                if ((_readable || (_busy && !_receivePending)) && ReceiveAvailable())
                {
                    continue;
                }

                if (!_receivePending)
                {
                    _receivePending = true;
                    if (!StartWaitForData())
                    {
                        _receivePending = false;
                        TakeReceiverResult();
                        continue;
                    }
                }

                _waiting = true;
                _pending.Reset();
                return new ValueTask<ReadResult>(this, _pending.Version);
            }
        }
    }

    /// <inheritdoc />
    public override bool TryRead(out ReadResult result)
    {
        lock (_receiver)
        {
            if (_cancelRequested)
            {
                _cancelRequested = false;
                result = new ReadResult(Unread, isCanceled: true, isCompleted: false);
                return true;
            }

            return TryGetResult(out result);
        }
    }

    /// <inheritdoc />
    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    /// <inheritdoc />
    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (_buffer is null || !ReferenceEquals(consumed.GetObject(), _buffer))
        {
            // Nothing was unread (the result was the empty sequence).
            return;
        }

        var consumedAt = consumed.GetInteger();
        var examinedAt = ReferenceEquals(examined.GetObject(), _buffer) ? Math.Max(consumedAt, examined.GetInteger()) : consumedAt;
        if (consumedAt < _start || examinedAt > _end)
        {
            throw new InvalidOperationException("The position is outside the data the last read returned.");
        }

        _start = consumedAt;
        _examined = Math.Max(_examined, examinedAt);
        if (_start == _end)
        {
            ReturnBuffer();
        }
    }

    /// <inheritdoc />
    public override void CancelPendingRead()
    {
        lock (_receiver)
        {
            if (_waiting)
            {
                // The zero-byte receive stays under way: it takes no data, so nothing is lost, and the next read waits on it.
                _waiting = false;
                _pending.SetResult(new ReadResult(Unread, isCanceled: true, isCompleted: false));
            }
            else
            {
                _cancelRequested = true;
            }
        }
    }

    /// <inheritdoc />
    public override void Complete(Exception? exception = null)
    {
        lock (_receiver)
        {
            _completed = true;
            if (!_waiting)
            {
                ReturnBuffer();
            }
        }
    }

    /// <summary>Gives the buffer back to the pool once the connection ended (no read is under way any more).</summary>
    public void Release()
    {
        lock (_receiver)
        {
            _completed = true;
            ReturnBuffer();
        }

        _receiver.Dispose();
    }

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token) => _pending.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) => _pending.GetStatus(token);

    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _pending.OnCompleted(continuation, state, token, flags);

    // The socket became readable (or ended, or failed) while a receive was under way.
    private void OnDataAvailable()
    {
        lock (_receiver)
        {
            _receivePending = false;
            TakeReceiverResult();
            if (!_waiting)
            {
                // The read was cancelled meanwhile: the next one finds the socket readable.
                return;
            }

            try
            {
                while (true)
                {
                    if (TryGetResult(out var result))
                    {
                        _waiting = false;
                        _pending.SetResult(result);
                        return;
                    }

                    if (_readable && ReceiveAvailable())
                    {
                        continue;
                    }

                    // Readable went by without data (another reader of the readiness was first): wait again.
                    _receivePending = true;
                    if (StartWaitForData())
                    {
                        return;
                    }

                    _receivePending = false;
                    TakeReceiverResult();
                }
            }
            catch (Exception ex)
            {
                _waiting = false;
                _pending.SetException(ex);
            }
        }
    }

    // What the reader gets now without waiting: unexamined bytes, the end of the stream, or the socket's failure.
    private bool TryGetResult(out ReadResult result)
    {
        if (_end > _examined)
        {
            result = new ReadResult(Unread, isCanceled: false, isCompleted: _ended);
            return true;
        }

        if (_ended)
        {
            result = new ReadResult(Unread, isCanceled: false, isCompleted: true);
            return true;
        }

        if (_error != SocketError.Success)
        {
            if (_connection.IsClosed)
            {
                // Closed from this side (the output completed, or an abort): the stream simply ends.
                _ended = true;
                result = new ReadResult(Unread, isCanceled: false, isCompleted: true);
                return true;
            }

            throw new ConnectionResetException($"The connection was reset ({_error}).", new SocketException((int)_error));
        }

        result = default;
        return false;
    }

    // Takes what the socket holds, without waiting. False when it held nothing after all (the buffer is not kept then).
    private bool ReceiveAvailable()
    {
        if (_connection.IsClosed)
        {
            _ended = true;
            return true;
        }

        if (_buffer is null)
        {
            return ReceiveIntoNewBuffer();
        }

        EnsureSpace();
        var space = _buffer!.Length - _end;
        int received;
        SocketError error;
        try
        {
            received = _connection.Socket.Receive(_buffer.AsSpan(_end), SocketFlags.None, out error);
        }
        catch (ObjectDisposedException)
        {
            _ended = true;
            ReturnBufferIfEmpty();
            return true;
        }

        if (error == SocketError.Success)
        {
            if (received == 0)
            {
                _ended = true;
            }

            _end += received;
            _busy = received > 0;

            // A full buffer means more may be waiting; less means the socket is drained for now.
            _readable = received == space;
            ReturnBufferIfEmpty();
            return true;
        }

        _readable = false;
        _busy = false;
        ReturnBufferIfEmpty();
        if (error == SocketError.WouldBlock)
        {
            return false;
        }

        _error = error;
        return true;
    }

    // With nothing unread: receives onto the stack, then takes a pooled array the size of what came. The array is held
    // until the connection's read loop has run, on another thread: when thousands of idle connections ping at once, more
    // arrays are out than the shared pool keeps, and each it lacks is a new one. For a ping that is 40 bytes instead of
    // a 4 KB receive buffer (docs/benchmarks.md, "The idle gateway's memory through a long hold"); the copy is at most
    // one receive's worth.
    private bool ReceiveIntoNewBuffer()
    {
        Span<byte> first = stackalloc byte[ReceiveSize];
        int received;
        SocketError error;
        try
        {
            received = _connection.Socket.Receive(first, SocketFlags.None, out error);
        }
        catch (ObjectDisposedException)
        {
            _ended = true;
            return true;
        }

        if (error != SocketError.Success)
        {
            _readable = false;
            _busy = false;
            if (error == SocketError.WouldBlock)
            {
                return false;
            }

            _error = error;
            return true;
        }

        if (received == 0)
        {
            _ended = true;
            _busy = false;
            return true;
        }

        // A full receive means more may be waiting: room for it, as a receive into a buffer of its own would have had.
        var full = received == ReceiveSize;
        _buffer = ArrayPool<byte>.Shared.Rent(full ? 2 * ReceiveSize : received);
        first[..received].CopyTo(_buffer);
        _start = _examined = 0;
        _end = received;
        _busy = true;
        _readable = full;
        return true;
    }

    // Starts a zero-byte receive: true while it is under way (OnDataAvailable follows), false when it completed at once.
    private bool StartWaitForData()
    {
        try
        {
            return _connection.Socket.ReceiveAsync(_receiver);
        }
        catch (ObjectDisposedException)
        {
            _ended = true;
            return false;
        }
    }

    private void TakeReceiverResult()
    {
        if (_receiver.SocketError == SocketError.Success)
        {
            _readable = true;
        }
        else
        {
            _error = _receiver.SocketError;
        }
    }

    // Room after the unread bytes of the buffer (there is one: an empty one is received into by ReceiveIntoNewBuffer).
    private void EnsureSpace()
    {
        var buffer = _buffer!;

        // An array smaller than a receive (taken for what came into an empty buffer) is replaced once more must come.
        if (_end < buffer.Length && buffer.Length >= ReceiveSize)
        {
            return;
        }

        var unread = _end - _start;
        var target = _start > 0 && unread <= buffer.Length / 2 && buffer.Length >= ReceiveSize
            ? buffer
            : ArrayPool<byte>.Shared.Rent(Math.Max(buffer.Length * 2, ReceiveSize));
        Buffer.BlockCopy(buffer, _start, target, 0, unread);
        if (!ReferenceEquals(target, buffer))
        {
            ArrayPool<byte>.Shared.Return(buffer);
            _buffer = target;
        }

        _examined -= _start;
        _end = unread;
        _start = 0;
    }

    private void ReturnBufferIfEmpty()
    {
        if (_start == _end)
        {
            ReturnBuffer();
        }
    }

    private void ReturnBuffer()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }

        _start = _end = _examined = 0;
    }

    // The arguments of the zero-byte receive: made once per connection, completing into the reader.
    private sealed class Receiver : SocketAsyncEventArgs
    {
        private readonly SocketInput _input;

        public Receiver(SocketInput input)
            : base(unsafeSuppressExecutionContextFlow: true)
        {
            _input = input;
            SetBuffer(Memory<byte>.Empty);
        }

        protected override void OnCompleted(SocketAsyncEventArgs e) => _input.OnDataAvailable();
    }
}
