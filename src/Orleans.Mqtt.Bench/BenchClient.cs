using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// One MQTT connection of the load tool over a raw socket. A single receive loop per connection
/// parses every packet in place in its read buffer, answers QoS 1/2 deliveries and PUBREL and
/// writes all answers of one read in one send; nothing on the per-message path allocates.
/// Subclasses see deliveries (<see cref="OnPublish"/>) and the final acknowledgement of their
/// own publishes (<see cref="OnAcknowledged"/>).
/// </summary>
internal abstract class BenchClient(RunState state, string name, byte version, int receiveBufferSize)
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly byte[] _pingReq = [(byte)PacketType.PingReq << 4, 0];
    private Socket? _socket;
    private byte[] _receive = new byte[receiveBufferSize];
    private byte[] _answers = new byte[256];
    private int _answersLength;
    private TaskCompletionSource<byte>? _connAck;
    private TaskCompletionSource<byte>? _subAck;
    private TaskCompletionSource? _unsubAck;
    private long _subAckTimestamp;
    private int _subAckCount = 1;
    private volatile bool _connected;
    private volatile bool _closing;
    private int _serverDisconnectReason = -1;

    /// <summary>Name used in error messages (role and index).</summary>
    public string Name => name;

    /// <summary>MQTT protocol level of this connection.</summary>
    public byte Version => version;

    /// <summary>True from CONNACK (success) until the connection ends.</summary>
    public bool IsConnected => _connected;

    /// <summary>The server's Receive Maximum from CONNACK (65535 when it sent none, or for MQTT 3.1.1).</summary>
    public int ServerReceiveMaximum { get; private set; } = ushort.MaxValue;

    /// <summary>Stopwatch timestamp at which the receive loop read the last SUBACK; set before a SUBSCRIBE call completes.</summary>
    public long SubAckTimestamp => Volatile.Read(ref _subAckTimestamp);

    /// <summary>Shared run state: error counts, measurement start.</summary>
    protected RunState State => state;

    /// <summary>
    /// Opens the TCP connection (from <paramref name="source"/> when given), sends CONNECT and waits for
    /// CONNACK. Returns the reason code; throws on network errors and timeouts.
    /// </summary>
    public async Task<byte> ConnectAsync(IPEndPoint broker, IPAddress? source, byte[] connect, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = new Socket(broker.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        _socket = socket;
        if (source is not null)
        {
            socket.Bind(new IPEndPoint(source, 0));
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        await socket.ConnectAsync(broker, deadline.Token).ConfigureAwait(false);
        _connAck = new TaskCompletionSource<byte>(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = ReceiveLoopAsync(socket);
        await SendAsync(connect).ConfigureAwait(false);
        var reason = await _connAck.Task.WaitAsync(deadline.Token).ConfigureAwait(false);
        _connected = reason == 0;
        return reason;
    }

    /// <summary>Subscribes one filter and returns the SUBACK reason code (granted QoS, or 0x80 and above for a refusal).</summary>
    public Task<byte> SubscribeAsync(string filter, int qos, TimeSpan timeout, CancellationToken cancellationToken) =>
        SubscribeAsync(MqttWire.Subscribe(version, 1, filter, qos), timeout, cancellationToken);

    /// <summary>
    /// Subscribes several filters in one SUBSCRIBE and returns the highest of the SUBACK's reason codes: 0x80 and above
    /// when any filter was refused (or the SUBACK carried fewer codes than filters), else the highest granted QoS.
    /// </summary>
    public Task<byte> SubscribeAsync(IReadOnlyList<string> filters, int qos, TimeSpan timeout, CancellationToken cancellationToken)
    {
        _subAckCount = filters.Count;
        return SubscribeAsync(MqttWire.Subscribe(version, 1, filters, qos), timeout, cancellationToken);
    }

    private async Task<byte> SubscribeAsync(byte[] packet, TimeSpan timeout, CancellationToken cancellationToken)
    {
        _subAck = new TaskCompletionSource<byte>(TaskCreationOptions.RunContinuationsAsynchronously);
        await SendAsync(packet).ConfigureAwait(false);
        try
        {
            return await _subAck.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _subAckCount = 1;
        }
    }

    /// <summary>Unsubscribes one filter and waits for UNSUBACK.</summary>
    public async Task UnsubscribeAsync(string filter, TimeSpan timeout, CancellationToken cancellationToken)
    {
        _unsubAck = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await SendAsync(MqttWire.Unsubscribe(version, 2, filter)).ConfigureAwait(false);
        await _unsubAck.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends a PINGREQ; errors end the connection through the receive loop.</summary>
    public async Task PingAsync()
    {
        try
        {
            await SendAsync(_pingReq).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Sends DISCONNECT and closes the socket; errors are ignored, the run is over.</summary>
    public async Task CloseAsync(TimeSpan timeout)
    {
        _closing = true;
        var socket = _socket;
        if (socket is null)
        {
            return;
        }

        try
        {
            if (_connected)
            {
                await SendAsync(new byte[] { (byte)PacketType.Disconnect << 4, 0 }).AsTask().WaitAsync(timeout).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // Best effort: the numbers are already taken.
        }

        _connected = false;
        socket.Dispose();
    }

    /// <summary>Writes <paramref name="packet"/> to the socket; writes from the receive loop and the publisher do not interleave.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    protected async ValueTask SendAsync(ReadOnlyMemory<byte> packet)
    {
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            while (packet.Length > 0)
            {
                var sent = await _socket!.SendAsync(packet, SocketFlags.None).ConfigureAwait(false);
                packet = packet[sent..];
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>A delivery to this client: the payload and its QoS. Runs on the receive loop; keep it short.</summary>
    protected virtual void OnPublish(ReadOnlySpan<byte> payload, int qos)
    {
    }

    /// <summary>
    /// The exchange of one of this client's QoS 1/2 publishes ended: PUBACK, PUBCOMP, or a PUBREC with an
    /// error reason code. <paramref name="reason"/> is the reason code (0 = success).
    /// </summary>
    protected virtual void OnAcknowledged(ushort packetId, byte reason)
    {
    }

    /// <summary>The connection ended without the tool closing it; <paramref name="message"/> says why. Runs on the receive loop.</summary>
    protected virtual void OnConnectionLost(string message)
    {
    }

    private async Task ReceiveLoopAsync(Socket socket)
    {
        var start = 0;
        var end = 0;
        try
        {
            while (true)
            {
                if (end == _receive.Length)
                {
                    MakeRoom(ref start, ref end);
                }

                var read = await socket.ReceiveAsync(_receive.AsMemory(end), SocketFlags.None).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                end += read;
                start = Parse(start, end);
                if (start == end)
                {
                    start = end = 0;
                }

                if (_answersLength > 0)
                {
                    var length = _answersLength;
                    _answersLength = 0;
                    await SendAsync(_answers.AsMemory(0, length)).ConfigureAwait(false);
                }
            }
        }
        catch (Exception exception)
        {
            // Network errors, and a packet the parser could not make sense of: either way the connection is over.
            if (!_closing)
            {
                Fail($"{exception.GetType().Name}: {exception.Message}");
            }

            return;
        }

        if (!_closing)
        {
            Fail(_serverDisconnectReason >= 0 ? $"server DISCONNECT 0x{_serverDisconnectReason:X2}" : "connection closed by the broker");
        }
    }

    private void Fail(string message)
    {
        var wasConnected = _connected;
        _connected = false;
        _connAck?.TrySetException(new IOException(message));
        _subAck?.TrySetException(new IOException(message));
        _unsubAck?.TrySetException(new IOException(message));
        OnConnectionLost(message);
        if (wasConnected)
        {
            state.OnDropped($"{name}: {message}");
        }
    }

    private void MakeRoom(ref int start, ref int end)
    {
        // Move a partial packet to the front, or grow the buffer for a packet larger than it.
        if (start > 0)
        {
            _receive.AsSpan(start, end - start).CopyTo(_receive);
            end -= start;
            start = 0;
            return;
        }

        Array.Resize(ref _receive, _receive.Length * 2);
    }

    // Handles every complete packet in [start, end) and returns the offset of the first incomplete one.
    private int Parse(int start, int end)
    {
        while (start < end)
        {
            var available = _receive.AsSpan(start, end - start);
            if (!MqttWire.TryReadFixedHeader(available, out var first, out var remaining, out var headerLength) ||
                available.Length < headerLength + remaining)
            {
                // Incomplete: the receive loop compacts or grows the buffer before the next read.
                return start;
            }

            Handle(first, available.Slice(headerLength, remaining));
            start += headerLength + remaining;
        }

        return start;
    }

    private void Handle(byte first, ReadOnlySpan<byte> body)
    {
        switch ((PacketType)(first >> 4))
        {
            case PacketType.Publish:
                var qos = (first >> 1) & 3;
                var payloadStart = MqttWire.ReadPublish(body, version, qos, out var packetId);
                OnPublish(body[payloadStart..], qos);
                if (qos == 1)
                {
                    Answer(PacketType.PubAck, packetId);
                }
                else if (qos == 2)
                {
                    Answer(PacketType.PubRec, packetId);
                }

                break;
            case PacketType.PubRel:
                Answer(PacketType.PubComp, BinaryPrimitives.ReadUInt16BigEndian(body));
                break;
            case PacketType.PubAck:
            case PacketType.PubComp:
                OnAcknowledged(BinaryPrimitives.ReadUInt16BigEndian(body), body.Length > 2 ? body[2] : (byte)0);
                break;
            case PacketType.PubRec:
                var id = BinaryPrimitives.ReadUInt16BigEndian(body);
                var reason = body.Length > 2 ? body[2] : (byte)0;
                if (reason >= 0x80)
                {
                    OnAcknowledged(id, reason);
                }
                else
                {
                    Answer(PacketType.PubRel, id);
                }

                break;
            case PacketType.ConnAck:
                MqttWire.ReadConnAck(body, version, out var code, out var receiveMaximum);
                ServerReceiveMaximum = receiveMaximum;
                _connAck?.TrySetResult(code);
                break;
            case PacketType.SubAck:
                var properties = 0;
                var offset = 2;
                if (version == MqttWire.Version5)
                {
                    offset += MqttWire.ReadVarInt(body[2..], out properties);
                }

                offset += properties;
                Volatile.Write(ref _subAckTimestamp, Stopwatch.GetTimestamp());
                _subAck?.TrySetResult(HighestReasonCode(body[Math.Min(offset, body.Length)..], Volatile.Read(ref _subAckCount)));
                break;
            case PacketType.UnsubAck:
                _unsubAck?.TrySetResult();
                break;
            case PacketType.Disconnect:
                _serverDisconnectReason = body.Length > 0 ? body[0] : 0;
                break;
        }
    }

    // The SUBACK's worst answer: a refusal (0x80 and above) wins; fewer codes than filters count as a refusal.
    internal static byte HighestReasonCode(ReadOnlySpan<byte> codes, int expected)
    {
        if (codes.Length < expected || codes.Length == 0)
        {
            return 0x80;
        }

        byte highest = 0;
        foreach (var code in codes)
        {
            highest = Math.Max(highest, code);
        }

        return highest;
    }

    private void Answer(PacketType type, ushort packetId)
    {
        if (_answersLength + 4 > _answers.Length)
        {
            Array.Resize(ref _answers, _answers.Length * 2);
        }

        _answersLength += MqttWire.WriteAck(_answers.AsSpan(_answersLength), type, packetId);
    }
}
