using System.Net;
using System.Net.Sockets;
using MQTTnet.Channel;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// Opens the client's TCP connection itself and buffers reads. The client reads every packet
/// as a fixed header and then a body, each straight from the socket, which costs at least two
/// receive calls per message; with a read buffer one receive call brings in many packets, which
/// keeps the tool's own CPU use well below the broker's. Writes go straight to the socket.
/// </summary>
internal sealed class ReadBufferedStreamProvider(int bufferSize) : IMqttClientStreamProvider
{
    /// <inheritdoc />
    public async Task<Stream> ConnectAsync(EndPoint brokerEndPoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(brokerEndPoint, cancellationToken).ConfigureAwait(false);
            return new ReadBufferedStream(new NetworkStream(socket, ownsSocket: true), bufferSize);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A stream whose reads are served from a buffer filled by large reads of the inner stream.</summary>
    private sealed class ReadBufferedStream(Stream inner, int bufferSize) : Stream
    {
        private readonly byte[] _buffer = new byte[bufferSize];
        private int _start;
        private int _end;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
        {
            if (_end > _start)
            {
                return new ValueTask<int>(CopyBuffered(destination.Span));
            }

            return destination.Length >= _buffer.Length
                ? inner.ReadAsync(destination, cancellationToken)
                : FillAndCopyAsync(destination, cancellationToken);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            return ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_end == _start)
            {
                _start = 0;
                _end = inner.Read(_buffer, 0, _buffer.Length);
            }

            return CopyBuffered(buffer.AsSpan(offset, count));
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
        {
            return inner.WriteAsync(source, cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            return inner.WriteAsync(buffer, offset, count, cancellationToken);
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            inner.Write(buffer, offset, count);
        }

        public override void Flush()
        {
            inner.Flush();
        }

        public override Task FlushAsync(CancellationToken cancellationToken)
        {
            return inner.FlushAsync(cancellationToken);
        }

        public override long Seek(long offset, SeekOrigin origin)
        {
            throw new NotSupportedException();
        }

        public override void SetLength(long value)
        {
            throw new NotSupportedException();
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        private async ValueTask<int> FillAndCopyAsync(Memory<byte> destination, CancellationToken cancellationToken)
        {
            var read = await inner.ReadAsync(_buffer, cancellationToken).ConfigureAwait(false);
            _start = 0;
            _end = read;
            return read == 0 ? 0 : CopyBuffered(destination.Span);
        }

        private int CopyBuffered(Span<byte> destination)
        {
            var count = Math.Min(destination.Length, _end - _start);
            _buffer.AsSpan(_start, count).CopyTo(destination);
            _start += count;
            return count;
        }
    }
}
