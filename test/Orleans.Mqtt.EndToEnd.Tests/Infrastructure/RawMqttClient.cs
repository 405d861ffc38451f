using System.Net.Sockets;
using System.Text;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>
/// MQTT at the byte level, for input a well-behaved client library refuses to send (wildcard topics, bad filters,
/// malformed and oversize packets, protocol violations).
/// </summary>
public sealed class RawMqttClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;

    private RawMqttClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public static async Task<RawMqttClient> ConnectAsync(int port)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        return new RawMqttClient(tcp);
    }

    /// <summary>Opens a connection and completes the CONNECT/CONNACK exchange; asserts acceptance.</summary>
    public static async Task<RawMqttClient> ConnectAcceptedAsync(int port, byte protocolLevel, string clientId, byte[]? properties = null)
    {
        var client = await ConnectAsync(port);
        await client.SendAsync(Connect(protocolLevel, clientId, properties: properties));
        var (type, body) = await client.ReadPacketAsync() ?? throw new InvalidOperationException("closed before CONNACK");
        Assert.Equal(2, type >> 4);
        Assert.Equal(0, body[1]);
        return client;
    }

    /// <summary>Why the last read found the connection gone when it was not a clean close (a reset), else null.</summary>
    public string? ClosedBy { get; private set; }

    /// <summary>The client's own port, as the server's logs name the connection.</summary>
    public int LocalPort => ((System.Net.IPEndPoint)_tcp.Client.LocalEndPoint!).Port;

    public Task SendAsync(byte[] bytes) => _stream.WriteAsync(bytes).AsTask();

    /// <summary>Reads one packet (fixed header byte and body), or null when the server closed the connection.</summary>
    public async Task<(byte Header, byte[] Body)?> ReadPacketAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            var header = new byte[1];
            if (await _stream.ReadAsync(header, cts.Token) == 0)
            {
                return null;
            }

            var length = 0;
            var multiplier = 1;
            while (true)
            {
                var b = new byte[1];
                if (await _stream.ReadAsync(b, cts.Token) == 0)
                {
                    return null;
                }

                length += (b[0] & 0x7F) * multiplier;
                multiplier *= 128;
                if ((b[0] & 0x80) == 0)
                {
                    break;
                }
            }

            var body = new byte[length];
            await _stream.ReadExactlyAsync(body, cts.Token);
            return (header[0], body);
        }
        catch (IOException e)
        {
            ClosedBy = e.InnerException?.Message ?? e.Message;
            return null;
        }
    }

    /// <summary>
    /// Asserts that the server closes the connection: MQTT 5 (<paramref name="level"/> 5) with one DISCONNECT carrying
    /// <paramref name="reasonCode"/> first, MQTT 3.1.1 with nothing.
    /// </summary>
    public async Task AssertClosedByServerAsync(byte level, byte reasonCode)
    {
        var packets = await ReadUntilClosedAsync();
        if (level == 5)
        {
            var (header, body) = Xunit.Assert.Single(packets);
            Xunit.Assert.Equal(0xE0, header);
            Xunit.Assert.Equal(reasonCode, body[0]);
        }
        else
        {
            Xunit.Assert.Empty(packets);
        }
    }

    /// <summary>Reads until the server closes the connection; returns the packets it sent before closing.</summary>
    public async Task<List<(byte Header, byte[] Body)>> ReadUntilClosedAsync(TimeSpan? timeout = null)
    {
        var packets = new List<(byte, byte[])>();
        while (await ReadPacketAsync(timeout) is { } packet)
        {
            packets.Add(packet);
        }

        return packets;
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// A CONNECT. <paramref name="properties"/> and <paramref name="willProperties"/> are MQTT 5 property blocks (see
    /// <see cref="Mqtt5Properties"/>); empty ones are sent when they are null.
    /// </summary>
    public static byte[] Connect(byte protocolLevel, string clientId, bool cleanSession = true, ushort keepAlive = 60, string? username = null, string? password = null, string? willTopic = null, string? willPayload = null, byte[]? properties = null, byte[]? willProperties = null, byte willQos = 0)
    {
        var body = new List<byte>();
        body.AddRange(Str("MQTT"));
        body.Add(protocolLevel);
        byte flags = (byte)(cleanSession ? 0x02 : 0);
        if (username is not null)
        {
            flags |= 0x80;
        }

        if (password is not null)
        {
            flags |= 0x40;
        }

        if (willTopic is not null)
        {
            flags |= (byte)(0x04 | (willQos << 3));
        }

        body.Add(flags);
        body.Add((byte)(keepAlive >> 8));
        body.Add((byte)keepAlive);
        if (protocolLevel == 5)
        {
            body.AddRange(properties ?? Mqtt5Properties.None);
        }

        body.AddRange(Str(clientId));
        if (willTopic is not null)
        {
            if (protocolLevel == 5)
            {
                body.AddRange(willProperties ?? Mqtt5Properties.None);
            }

            body.AddRange(Str(willTopic));
            body.AddRange(Str(willPayload ?? string.Empty));
        }

        if (username is not null)
        {
            body.AddRange(Str(username));
        }

        if (password is not null)
        {
            body.AddRange(Str(password));
        }

        return Packet(0x10, body);
    }

    /// <summary>A PUBLISH; <paramref name="properties"/> is an MQTT 5 property block and implies <paramref name="v5"/>.</summary>
    public static byte[] Publish(string topic, byte[] payload, byte qos = 0, ushort packetId = 0, bool v5 = false, bool retain = false, byte[]? properties = null)
    {
        var body = new List<byte>();
        body.AddRange(Str(topic));
        if (qos > 0)
        {
            body.Add((byte)(packetId >> 8));
            body.Add((byte)packetId);
        }

        if (properties is not null)
        {
            body.AddRange(properties);
        }
        else if (v5)
        {
            body.Add(0);
        }

        body.AddRange(payload);
        return Packet((byte)(0x30 | (qos << 1) | (retain ? 1 : 0)), body);
    }

    public static byte[] Subscribe(ushort packetId, bool v5, params (string Filter, byte Qos)[] filters)
    {
        var body = new List<byte> { (byte)(packetId >> 8), (byte)packetId };
        if (v5)
        {
            body.Add(0);
        }

        foreach (var (filter, qos) in filters)
        {
            body.AddRange(Str(filter));
            body.Add(qos);
        }

        return Packet(0x82, body);
    }

    public static byte[] PubRel(ushort packetId) => Packet(0x62, [(byte)(packetId >> 8), (byte)packetId]);

    public static byte[] Disconnect() => [0xE0, 0x00];

    /// <summary>An MQTT 5 DISCONNECT with a reason code and a property block.</summary>
    public static byte[] Disconnect(byte reasonCode, byte[] properties) => Packet(0xE0, [reasonCode, .. properties]);

    public static byte[] PubAck(ushort packetId) => Packet(0x40, [(byte)(packetId >> 8), (byte)packetId]);

    public static byte[] PubRec(ushort packetId) => Packet(0x50, [(byte)(packetId >> 8), (byte)packetId]);

    public static byte[] PubComp(ushort packetId) => Packet(0x70, [(byte)(packetId >> 8), (byte)packetId]);

    public static byte[] Packet(byte header, IReadOnlyCollection<byte> body)
    {
        var bytes = new List<byte> { header };
        AppendVariableByteInteger(bytes, body.Count);
        bytes.AddRange(body);
        return [.. bytes];
    }

    /// <summary>Appends an MQTT Variable Byte Integer (remaining length, property block length).</summary>
    public static void AppendVariableByteInteger(List<byte> bytes, int value)
    {
        do
        {
            var b = (byte)(value % 128);
            value /= 128;
            if (value > 0)
            {
                b |= 0x80;
            }

            bytes.Add(b);
        }
        while (value > 0);
    }

    private static byte[] Str(string s)
    {
        var utf8 = Encoding.UTF8.GetBytes(s);
        return [(byte)(utf8.Length >> 8), (byte)utf8.Length, .. utf8];
    }
}
