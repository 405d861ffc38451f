using System.Net;
using System.Net.Sockets;

namespace Orleans.Mqtt.Bench;

/// <summary>How the broker answered a fuzzed packet followed by a PINGREQ.</summary>
internal enum FuzzAnswer
{
    /// <summary>PINGRESP arrived: the broker took the packet and went on reading.</summary>
    Answered,

    /// <summary>The broker closed the connection (after a DISCONNECT or a refusing CONNACK, or without either).</summary>
    Closed,

    /// <summary>Neither within the timeout.</summary>
    NoAnswer,
}

/// <summary>
/// One raw connection of the fuzz scenario: writes bytes as given (no encoder between the tool and the wire) and
/// reads whole packets, noting the CONNACK and DISCONNECT reason codes the broker sent.
/// </summary>
internal sealed class FuzzConnection : IAsyncDisposable
{
    private static readonly byte[] PingReq = [(byte)PacketType.PingReq << 4, 0];

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;
    private int _pingsUnanswered;

    private FuzzConnection(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    /// <summary>The reason code of the CONNACK the broker sent, or null before one.</summary>
    public byte? ConnAckReason { get; private set; }

    /// <summary>The reason code of the DISCONNECT the broker sent (MQTT 5), or null when it sent none.</summary>
    public byte? DisconnectReason { get; private set; }

    /// <summary>Opens a TCP connection to <paramref name="broker"/>, from <paramref name="source"/> when given.</summary>
    public static async Task<FuzzConnection> OpenAsync(IPEndPoint broker, IPAddress? source, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = new Socket(broker.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (source is not null)
            {
                socket.Bind(new IPEndPoint(source, 0));
            }

            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            await socket.ConnectAsync(broker, deadline.Token).ConfigureAwait(false);
            return new FuzzConnection(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends <paramref name="packet"/> and a PINGREQ in one write and reads until the PINGRESP, the end of the
    /// connection or <paramref name="timeout"/>. Whatever else arrives (CONNACK, acknowledgements, messages) is read past.
    /// A <paramref name="packet"/> that is itself a PINGREQ the broker takes gets a PINGRESP too: the answer is the last one.
    /// </summary>
    public async Task<FuzzAnswer> SendWithPingAsync(byte[] packet, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var bytes = new byte[packet.Length + PingReq.Length];
        packet.CopyTo(bytes, 0);
        PingReq.CopyTo(bytes, packet.Length);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        _pingsUnanswered += packet[0] >> 4 == (int)PacketType.PingReq ? 2 : 1;
        try
        {
            await _stream.WriteAsync(bytes, deadline.Token).ConfigureAwait(false);
            while (true)
            {
                var type = await ReadPacketAsync(deadline.Token).ConfigureAwait(false);
                if (type is null)
                {
                    return FuzzAnswer.Closed;
                }

                if (type == PacketType.PingResp && --_pingsUnanswered == 0)
                {
                    return FuzzAnswer.Answered;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return FuzzAnswer.NoAnswer;
        }
        catch (IOException)
        {
            // A reset: the broker closed with data of ours unread.
            return FuzzAnswer.Closed;
        }
    }

    /// <summary>Sends a CONNECT and reads until its CONNACK; returns its reason code, or null when the connection ended first.</summary>
    public async Task<byte?> ConnectAsync(byte[] connect, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        await _stream.WriteAsync(connect, deadline.Token).ConfigureAwait(false);
        while (ConnAckReason is null)
        {
            if (await ReadPacketAsync(deadline.Token).ConfigureAwait(false) is null)
            {
                return null;
            }
        }

        return ConnAckReason;
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        // Abortive close: a connection the tool gives up leaves no TIME_WAIT behind on either side.
        _socket.LingerState = new LingerOption(true, 0);
        return _stream.DisposeAsync();
    }

    // Reads one whole packet; returns its type, or null at the end of the stream.
    private async Task<PacketType?> ReadPacketAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var available = _buffer.AsSpan(_start, _end - _start);
            if (MqttWire.TryReadFixedHeader(available, out var first, out var remaining, out var headerLength)
                && available.Length >= headerLength + remaining)
            {
                var body = available.Slice(headerLength, remaining);
                var type = (PacketType)(first >> 4);
                if (type == PacketType.ConnAck && body.Length >= 2)
                {
                    ConnAckReason = body[1];
                }
                else if (type == PacketType.Disconnect)
                {
                    DisconnectReason = body.Length > 0 ? body[0] : (byte)0;
                }

                _start += headerLength + remaining;
                return type;
            }

            if (_start > 0)
            {
                available.CopyTo(_buffer);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                // A packet larger than the buffer (a big retained message): read past it in pieces.
                var skip = headerLength + remaining - _end;
                _start = _end = 0;
                await SkipAsync(skip, cancellationToken).ConfigureAwait(false);
                return (PacketType)(first >> 4);
            }

            var read = await _stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return null;
            }

            _end += read;
        }
    }

    private async Task SkipAsync(int count, CancellationToken cancellationToken)
    {
        while (count > 0)
        {
            var read = await _stream.ReadAsync(_buffer.AsMemory(0, Math.Min(count, _buffer.Length)), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException("the connection ended inside a packet");
            }

            count -= read;
        }
    }
}
