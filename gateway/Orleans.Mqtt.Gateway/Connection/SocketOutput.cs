using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The output of a <see cref="SocketConnection"/>: a pipe writer straight over the socket. What is written collects in
/// one pooled array until <see cref="FlushAsync"/> sends it; the array goes back to the pool once sent, so an idle
/// connection holds none. A flush sends without waiting while the socket takes the bytes and waits (an asynchronous
/// send) only once the peer's window and the socket's send buffer are full: a flush completes when the kernel has
/// taken every byte, which is the back-pressure <see cref="ConnectionWriter"/> relies on.
/// </summary>
/// <remarks>One writer at a time (the connection's output drain), as for any <see cref="PipeWriter"/>.</remarks>
internal sealed class SocketOutput(SocketConnection connection) : PipeWriter
{
    /// <summary>The first array a write takes; it doubles while the unflushed bytes do not fit.</summary>
    public const int SendSize = 4096;

    private byte[]? _buffer;
    private int _written;
    private bool _completed;

    /// <summary>Whether a pooled array is held now (an idle connection holds none).</summary>
    public bool HoldsBuffer => _buffer is not null;

    /// <inheritdoc />
    public override bool CanGetUnflushedBytes => true;

    /// <inheritdoc />
    public override long UnflushedBytes => _written;

    /// <inheritdoc />
    public override Memory<byte> GetMemory(int sizeHint = 0) => Reserve(sizeHint).AsMemory(_written);

    /// <inheritdoc />
    public override Span<byte> GetSpan(int sizeHint = 0) => Reserve(sizeHint).AsSpan(_written);

    /// <inheritdoc />
    public override void Advance(int bytes)
    {
        if (bytes < 0 || _buffer is null || _written + bytes > _buffer.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(bytes), bytes, "More bytes than the memory the last GetMemory gave.");
        }

        _written += bytes;
    }

    /// <inheritdoc />
    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (_written == 0)
        {
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: connection.IsClosed));
        }

        var socket = connection.Socket;
        var sent = 0;
        while (sent < _written)
        {
            int count;
            SocketError error;
            try
            {
                count = socket.Send(_buffer.AsSpan(sent, _written - sent), SocketFlags.None, out error);
            }
            catch (ObjectDisposedException)
            {
                Release();
                return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: true));
            }

            if (error == SocketError.Success)
            {
                sent += count;
            }
            else if (error == SocketError.WouldBlock)
            {
                // The peer reads slower than it is written to: wait until the socket takes the rest.
                return SendRestAsync(sent, cancellationToken);
            }
            else
            {
                return Failed(error);
            }
        }

        Release();
        return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: false));
    }

    /// <inheritdoc />
    public override void CancelPendingFlush()
    {
        // Nothing of the gateway cancels a flush: a connection that stops writing completes its output or is aborted.
    }

    /// <summary>
    /// Ends the output: bytes not flushed are dropped (the connection flushes its last packet first), and the socket is
    /// shut down and closed, as Kestrel's transport does when an application completes its output.
    /// </summary>
    public override void Complete(Exception? exception = null)
    {
        if (_completed)
        {
            return;
        }

        _completed = true;
        Release();
        connection.Close();
    }

    /// <summary>Gives the buffer back to the pool (after a send, or once the connection ended).</summary>
    public void Release()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }

        _written = 0;
    }

    private byte[] Reserve(int sizeHint)
    {
        if (_completed)
        {
            throw new InvalidOperationException("Writing is not allowed after the output was completed.");
        }

        sizeHint = Math.Max(sizeHint, 1);
        if (_buffer is null)
        {
            _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(sizeHint, SendSize));
        }
        else if (_buffer.Length - _written < sizeHint)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _written + sizeHint));
            Buffer.BlockCopy(_buffer, 0, larger, 0, _written);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }

        return _buffer;
    }

    private async ValueTask<FlushResult> SendRestAsync(int sent, CancellationToken cancellationToken)
    {
        try
        {
            while (sent < _written)
            {
                sent += await connection.Socket.SendAsync(_buffer.AsMemory(sent, _written - sent), SocketFlags.None, cancellationToken);
            }

            return new FlushResult(isCanceled: false, isCompleted: false);
        }
        catch (ObjectDisposedException)
        {
            return new FlushResult(isCanceled: false, isCompleted: true);
        }
        catch (SocketException ex) when (connection.IsClosed || ex.SocketErrorCode == SocketError.OperationAborted)
        {
            return new FlushResult(isCanceled: false, isCompleted: true);
        }
        catch (SocketException ex)
        {
            throw new ConnectionResetException($"Sending failed ({ex.SocketErrorCode}).", ex);
        }
        finally
        {
            Release();
        }
    }

    private ValueTask<FlushResult> Failed(SocketError error)
    {
        Release();
        if (connection.IsClosed)
        {
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: true));
        }

        return ValueTask.FromException<FlushResult>(new ConnectionResetException($"Sending failed ({error}).", new SocketException((int)error)));
    }
}
