using System.Buffers.Binary;
using System.Text;

namespace Orleans.Mqtt.Bench;

/// <summary>MQTT control packet types, as the high nibble of the first byte.</summary>
internal enum PacketType : byte
{
    /// <summary>Client request to connect.</summary>
    Connect = 1,

    /// <summary>Connect acknowledgement.</summary>
    ConnAck = 2,

    /// <summary>Application message.</summary>
    Publish = 3,

    /// <summary>QoS 1 acknowledgement.</summary>
    PubAck = 4,

    /// <summary>QoS 2, part 1.</summary>
    PubRec = 5,

    /// <summary>QoS 2, part 2.</summary>
    PubRel = 6,

    /// <summary>QoS 2, part 3.</summary>
    PubComp = 7,

    /// <summary>Subscribe request.</summary>
    Subscribe = 8,

    /// <summary>Subscribe acknowledgement.</summary>
    SubAck = 9,

    /// <summary>Unsubscribe request.</summary>
    Unsubscribe = 10,

    /// <summary>Unsubscribe acknowledgement.</summary>
    UnsubAck = 11,

    /// <summary>Keep-alive request.</summary>
    PingReq = 12,

    /// <summary>Keep-alive response.</summary>
    PingResp = 13,

    /// <summary>Orderly close (either side in MQTT 5).</summary>
    Disconnect = 14,
}

/// <summary>
/// Just enough of the MQTT 3.1.1 / 5.0 wire format for a load generator: writers for the packets
/// the tool sends and a reader for the fixed header. Writers return the number of bytes written
/// and never allocate; callers size the destination (<see cref="PublishLength"/>).
/// </summary>
internal static class MqttWire
{
    /// <summary>Protocol level byte of MQTT 3.1.1.</summary>
    public const byte Version311 = 4;

    /// <summary>Protocol level byte of MQTT 5.0.</summary>
    public const byte Version5 = 5;

    /// <summary>The largest remaining length MQTT can express.</summary>
    public const int MaxRemainingLength = 268_435_455;

    /// <summary>Bytes taken by <paramref name="value"/> as a variable byte integer.</summary>
    public static int VarIntSize(int value) => value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4;

    /// <summary>Writes <paramref name="value"/> as a variable byte integer.</summary>
    public static int WriteVarInt(Span<byte> destination, int value)
    {
        var i = 0;
        do
        {
            var digit = (byte)(value & 0x7F);
            value >>= 7;
            destination[i++] = value > 0 ? (byte)(digit | 0x80) : digit;
        }
        while (value > 0);
        return i;
    }

    /// <summary>
    /// Reads a fixed header: the first byte and the remaining length. Returns false when
    /// <paramref name="source"/> does not hold the whole header yet; throws on a malformed length.
    /// </summary>
    public static bool TryReadFixedHeader(ReadOnlySpan<byte> source, out byte first, out int remainingLength, out int headerLength)
    {
        first = 0;
        remainingLength = 0;
        headerLength = 0;
        if (source.Length < 2)
        {
            return false;
        }

        first = source[0];
        var multiplier = 0;
        for (var i = 1; i < 5; i++)
        {
            if (i >= source.Length)
            {
                return false;
            }

            var digit = source[i];
            remainingLength |= (digit & 0x7F) << multiplier;
            if ((digit & 0x80) == 0)
            {
                headerLength = i + 1;
                return true;
            }

            multiplier += 7;
        }

        throw new InvalidDataException("malformed remaining length");
    }

    /// <summary>Reads a variable byte integer from the start of <paramref name="source"/>; returns its size in bytes.</summary>
    public static int ReadVarInt(ReadOnlySpan<byte> source, out int value)
    {
        value = 0;
        for (var i = 0; i < 4 && i < source.Length; i++)
        {
            value |= (source[i] & 0x7F) << (7 * i);
            if ((source[i] & 0x80) == 0)
            {
                return i + 1;
            }
        }

        throw new InvalidDataException("malformed variable byte integer");
    }

    /// <summary>Encodes a UTF-8 string with its two-byte length prefix, as it appears on the wire.</summary>
    public static byte[] EncodeString(string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        if (length > ushort.MaxValue)
        {
            throw new ArgumentException($"'{value[..32]}…' is longer than 65535 bytes", nameof(value));
        }

        var bytes = new byte[length + 2];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, (ushort)length);
        Encoding.UTF8.GetBytes(value, bytes.AsSpan(2));
        return bytes;
    }

    /// <summary>Writes a CONNECT packet into a new array.</summary>
    public static byte[] Connect(
        byte version, string clientId, bool cleanStart, uint sessionExpiry, ushort keepAlive, string? userName, string? password)
    {
        var id = EncodeString(clientId);
        var user = userName is null ? null : EncodeString(userName);
        var pass = password is null ? null : EncodeString(password);
        var properties = version == Version5 ? (sessionExpiry > 0 ? 5 : 0) : -1;
        var remaining = 10 + (properties >= 0 ? VarIntSize(properties) + properties : 0) + id.Length + (user?.Length ?? 0) + (pass?.Length ?? 0);

        var packet = new byte[1 + VarIntSize(remaining) + remaining];
        var span = packet.AsSpan();
        span[0] = (byte)PacketType.Connect << 4;
        var i = 1 + WriteVarInt(span[1..], remaining);
        "\0\u0004MQTT"u8.CopyTo(span[i..]);
        i += 6;
        span[i++] = version;
        span[i++] = (byte)((cleanStart ? 0x02 : 0) | (user is null ? 0 : 0x80) | (pass is null ? 0 : 0x40));
        BinaryPrimitives.WriteUInt16BigEndian(span[i..], keepAlive);
        i += 2;
        if (properties >= 0)
        {
            i += WriteVarInt(span[i..], properties);
            if (sessionExpiry > 0)
            {
                span[i++] = 0x11;
                BinaryPrimitives.WriteUInt32BigEndian(span[i..], sessionExpiry);
                i += 4;
            }
        }

        foreach (var part in (ReadOnlySpan<byte[]?>)[id, user, pass])
        {
            if (part is not null)
            {
                part.CopyTo(span[i..]);
                i += part.Length;
            }
        }

        return packet;
    }

    /// <summary>Writes a SUBSCRIBE packet for one filter into a new array.</summary>
    public static byte[] Subscribe(byte version, ushort packetId, string filter, int qos) =>
        FilterPacket(PacketType.Subscribe, version, packetId, [filter], (byte)qos);

    /// <summary>Writes a SUBSCRIBE packet for several filters, all at <paramref name="qos"/>, into a new array.</summary>
    public static byte[] Subscribe(byte version, ushort packetId, IReadOnlyList<string> filters, int qos) =>
        FilterPacket(PacketType.Subscribe, version, packetId, filters, (byte)qos);

    /// <summary>Writes an UNSUBSCRIBE packet for one filter into a new array.</summary>
    public static byte[] Unsubscribe(byte version, ushort packetId, string filter) =>
        FilterPacket(PacketType.Unsubscribe, version, packetId, [filter], options: null);

    // SUBSCRIBE and UNSUBSCRIBE differ only in their type and in the options byte after each of a SUBSCRIBE's filters.
    private static byte[] FilterPacket(PacketType type, byte version, ushort packetId, IReadOnlyList<string> filters, byte? options)
    {
        var topics = new byte[filters.Count][];
        var remaining = 2 + (version == Version5 ? 1 : 0);
        for (var f = 0; f < filters.Count; f++)
        {
            topics[f] = EncodeString(filters[f]);
            remaining += topics[f].Length + (options is null ? 0 : 1);
        }

        var packet = new byte[1 + VarIntSize(remaining) + remaining];
        var span = packet.AsSpan();
        span[0] = (byte)(((byte)type << 4) | 0x02);
        var i = 1 + WriteVarInt(span[1..], remaining);
        BinaryPrimitives.WriteUInt16BigEndian(span[i..], packetId);
        i += 2;
        if (version == Version5)
        {
            span[i++] = 0;
        }

        foreach (var topic in topics)
        {
            topic.CopyTo(span[i..]);
            i += topic.Length;
            if (options is { } o)
            {
                span[i++] = o;
            }
        }

        return packet;
    }

    /// <summary>Size of a PUBLISH packet with an encoded topic of <paramref name="topicLength"/> bytes (length prefix included).</summary>
    public static int PublishLength(byte version, int topicLength, int qos, int payloadLength)
    {
        var remaining = PublishRemainingLength(version, topicLength, qos, payloadLength);
        return 1 + VarIntSize(remaining) + remaining;
    }

    /// <summary>
    /// Writes a PUBLISH header (fixed header, topic, packet id, empty MQTT 5 properties) for a payload of
    /// <paramref name="payloadLength"/> bytes; the payload goes right after the returned length.
    /// </summary>
    public static int WritePublishHeader(
        Span<byte> destination, byte version, ReadOnlySpan<byte> encodedTopic, int qos, ushort packetId, int payloadLength, bool retain = false)
    {
        var remaining = PublishRemainingLength(version, encodedTopic.Length, qos, payloadLength);
        destination[0] = (byte)(((byte)PacketType.Publish << 4) | (qos << 1) | (retain ? 1 : 0));
        var i = 1 + WriteVarInt(destination[1..], remaining);
        encodedTopic.CopyTo(destination[i..]);
        i += encodedTopic.Length;
        if (qos > 0)
        {
            BinaryPrimitives.WriteUInt16BigEndian(destination[i..], packetId);
            i += 2;
        }

        if (version == Version5)
        {
            destination[i++] = 0;
        }

        return i;
    }

    /// <summary>Writes a four-byte acknowledgement (PUBACK, PUBREC, PUBREL or PUBCOMP) with reason code success.</summary>
    public static int WriteAck(Span<byte> destination, PacketType type, ushort packetId)
    {
        // PUBREL carries the reserved flags 0010; MQTT 5 omits the reason code when it is success.
        destination[0] = (byte)(((byte)type << 4) | (type == PacketType.PubRel ? 0x02 : 0));
        destination[1] = 2;
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], packetId);
        return 4;
    }

    /// <summary>
    /// Reads a CONNACK body: the reason code (MQTT 5) or return code (3.1.1), and the server's
    /// Receive Maximum (65535 when absent).
    /// </summary>
    public static void ReadConnAck(ReadOnlySpan<byte> body, byte version, out byte reason, out int receiveMaximum)
    {
        reason = body.Length > 1 ? body[1] : (byte)0xFF;
        receiveMaximum = ushort.MaxValue;
        if (version != Version5 || body.Length <= 2)
        {
            return;
        }

        var propertiesStart = 2 + ReadVarInt(body[2..], out var length);
        var properties = body.Slice(propertiesStart, Math.Min(length, body.Length - propertiesStart));
        while (properties.Length > 0)
        {
            var id = properties[0];
            if (id == 0x21 && properties.Length >= 3)
            {
                receiveMaximum = BinaryPrimitives.ReadUInt16BigEndian(properties[1..]);
            }

            var size = PropertySize(id, properties[1..]);
            if (size < 0)
            {
                return;
            }

            properties = properties[(1 + size)..];
        }
    }

    /// <summary>
    /// Reads a PUBLISH body (after the fixed header): the packet id (0 at QoS 0) and where the payload starts.
    /// </summary>
    public static int ReadPublish(ReadOnlySpan<byte> body, byte version, int qos, out ushort packetId)
    {
        var i = 2 + BinaryPrimitives.ReadUInt16BigEndian(body);
        packetId = 0;
        if (qos > 0)
        {
            packetId = BinaryPrimitives.ReadUInt16BigEndian(body[i..]);
            i += 2;
        }

        if (version == Version5)
        {
            i += ReadVarInt(body[i..], out var properties);
            i += properties;
        }

        return i;
    }

    private static int PublishRemainingLength(byte version, int topicLength, int qos, int payloadLength)
    {
        return topicLength + (qos > 0 ? 2 : 0) + (version == Version5 ? 1 : 0) + payloadLength;
    }

    // Size of one MQTT 5 property value after its identifier, or -1 for an identifier the tool does not know.
    private static int PropertySize(byte id, ReadOnlySpan<byte> value)
    {
        switch (id)
        {
            case 0x01 or 0x17 or 0x19 or 0x24 or 0x25 or 0x28 or 0x29 or 0x2A:
                return 1;
            case 0x13 or 0x21 or 0x22 or 0x23:
                return 2;
            case 0x02 or 0x11 or 0x18 or 0x27:
                return 4;
            case 0x0B:
                return ReadVarInt(value, out _);
            case 0x03 or 0x08 or 0x09 or 0x12 or 0x15 or 0x16 or 0x1A or 0x1C or 0x1F:
                return value.Length < 2 ? -1 : 2 + BinaryPrimitives.ReadUInt16BigEndian(value);
            case 0x26:
                if (value.Length < 2)
                {
                    return -1;
                }

                var key = 2 + BinaryPrimitives.ReadUInt16BigEndian(value);
                return value.Length < key + 2 ? -1 : key + 2 + BinaryPrimitives.ReadUInt16BigEndian(value[key..]);
            default:
                return -1;
        }
    }
}
