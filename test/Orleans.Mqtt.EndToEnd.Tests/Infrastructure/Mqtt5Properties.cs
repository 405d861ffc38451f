using System.Buffers.Binary;
using System.Text;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>
/// MQTT 5 property blocks for raw packets: a variable byte integer length followed by id/value pairs. Built from
/// single properties, and read back from the packets the broker sends.
/// </summary>
public static class Mqtt5Properties
{
    public const byte PayloadFormatIndicator = 0x01;
    public const byte MessageExpiryInterval = 0x02;
    public const byte SessionExpiryInterval = 0x11;
    public const byte ServerKeepAlive = 0x13;
    public const byte AuthenticationMethod = 0x15;
    public const byte WillDelayInterval = 0x18;
    public const byte ReceiveMaximum = 0x21;
    public const byte TopicAliasMaximum = 0x22;
    public const byte TopicAlias = 0x23;
    public const byte MaximumQos = 0x24;
    public const byte RetainAvailable = 0x25;
    public const byte MaximumPacketSize = 0x27;
    public const byte WildcardSubscriptionAvailable = 0x28;
    public const byte SubscriptionIdentifiersAvailable = 0x29;
    public const byte SharedSubscriptionAvailable = 0x2A;

    /// <summary>An empty property block.</summary>
    public static byte[] None => [0];

    /// <summary>A property block holding <paramref name="properties"/> (each built with the helpers below).</summary>
    public static byte[] Of(params byte[][] properties)
    {
        var content = properties.SelectMany(p => p).ToArray();
        var block = new List<byte>();
        RawMqttClient.AppendVariableByteInteger(block, content.Length);
        block.AddRange(content);
        return [.. block];
    }

    public static byte[] Byte(byte id, byte value) => [id, value];

    public static byte[] TwoByte(byte id, ushort value) => [id, (byte)(value >> 8), (byte)value];

    public static byte[] FourByte(byte id, uint value) => [id, (byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value];

    public static byte[] Utf8String(byte id, string value)
    {
        var utf8 = Encoding.UTF8.GetBytes(value);
        return [id, (byte)(utf8.Length >> 8), (byte)utf8.Length, .. utf8];
    }

    /// <summary>Reads the property block at <paramref name="offset"/>: each property's raw value by id, and where the block ends.</summary>
    public static (Dictionary<byte, byte[]> Properties, int End) Read(byte[] packet, int offset)
    {
        var length = 0;
        var shift = 0;
        byte b;
        do
        {
            b = packet[offset++];
            length |= (b & 0x7F) << shift;
            shift += 7;
        }
        while ((b & 0x80) != 0);

        var end = offset + length;
        var properties = new Dictionary<byte, byte[]>();
        while (offset < end)
        {
            var id = packet[offset++];
            var size = id switch
            {
                0x01 or 0x17 or 0x19 or 0x24 or 0x25 or 0x28 or 0x29 or 0x2A => 1,
                0x13 or 0x21 or 0x22 or 0x23 => 2,
                0x02 or 0x11 or 0x18 or 0x27 => 4,
                0x03 or 0x08 or 0x09 or 0x12 or 0x15 or 0x16 or 0x1A or 0x1C or 0x1F => 2 + BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(offset)),
                0x26 => UserPropertySize(packet, offset),
                0x0B => VariableByteIntegerSize(packet, offset),
                _ => throw new InvalidOperationException($"unknown property 0x{id:X2}"),
            };
            properties[id] = packet[offset..(offset + size)];
            offset += size;
        }

        return (properties, end);
    }

    /// <summary>The value of a one, two or four byte integer property.</summary>
    public static uint Integer(byte[] value) => value.Length switch
    {
        1 => value[0],
        2 => BinaryPrimitives.ReadUInt16BigEndian(value),
        _ => BinaryPrimitives.ReadUInt32BigEndian(value),
    };

    private static int UserPropertySize(byte[] packet, int offset)
    {
        var name = 2 + BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(offset));
        return name + 2 + BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(offset + name));
    }

    private static int VariableByteIntegerSize(byte[] packet, int offset)
    {
        var size = 1;
        while ((packet[offset + size - 1] & 0x80) != 0)
        {
            size++;
        }

        return size;
    }
}

/// <summary>A PUBLISH the broker sent, taken apart.</summary>
public sealed record ReceivedPublish(byte Header, string Topic, ushort PacketId, Dictionary<byte, byte[]> Properties, byte[] Payload)
{
    public byte Qos => (byte)((Header >> 1) & 3);

    public string PayloadText => Encoding.UTF8.GetString(Payload);

    /// <summary>Parses a packet read with <see cref="RawMqttClient.ReadPacketAsync"/>; asserts it is a PUBLISH.</summary>
    public static ReceivedPublish Parse((byte Header, byte[] Body)? packet, bool v5 = true)
    {
        var (header, body) = packet ?? throw new InvalidOperationException("connection closed instead of PUBLISH");
        Assert.Equal(0x30, header & 0xF0);
        var topicLength = BinaryPrimitives.ReadUInt16BigEndian(body);
        var topic = Encoding.UTF8.GetString(body, 2, topicLength);
        var offset = 2 + topicLength;
        ushort packetId = 0;
        if ((header & 0x06) != 0)
        {
            packetId = BinaryPrimitives.ReadUInt16BigEndian(body.AsSpan(offset));
            offset += 2;
        }

        var properties = new Dictionary<byte, byte[]>();
        if (v5)
        {
            (properties, offset) = Mqtt5Properties.Read(body, offset);
        }

        return new ReceivedPublish(header, topic, packetId, properties, body[offset..]);
    }
}
