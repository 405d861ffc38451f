namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Finds one MQTT 5 property in the raw bytes of a packet MQTTnet already decoded. MQTTnet's packets carry an
/// absent property and a property with the value 0 the same way; where the difference matters (Topic Alias 0 is a
/// protocol error, a DISCONNECT's Session Expiry Interval 0 ends the session) the bytes tell them apart.
/// </summary>
internal static class MqttPropertyScan
{
    /// <summary>The Session Expiry Interval property (four-byte integer).</summary>
    public const byte SessionExpiryInterval = 0x11;

    /// <summary>The Topic Alias property (two-byte integer).</summary>
    public const byte TopicAlias = 0x23;

    /// <summary>
    /// Whether the property block that starts at <paramref name="offset"/> (with its variable byte integer length)
    /// contains <paramref name="id"/>. Only called on packets the decoder accepted, so a block it cannot walk is
    /// answered with false.
    /// </summary>
    public static bool Contains(ReadOnlySpan<byte> packet, int offset, byte id)
    {
        if (!VariableByteInteger.TryRead(packet, ref offset, out var length) || length > packet.Length - offset)
        {
            return false;
        }

        var properties = packet.Slice(offset, length);
        var position = 0;
        while (position < properties.Length)
        {
            var current = properties[position++];
            if (current == id)
            {
                return true;
            }

            var size = ValueSize(current, properties[position..]);
            if (size < 0)
            {
                return false;
            }

            position += size;
        }

        return false;
    }

    /// <summary>Where the property block of a PUBLISH body starts: after the topic name and, for QoS 1/2, the packet id.</summary>
    public static int PublishPropertiesOffset(ReadOnlySpan<byte> body, int qos) =>
        body.Length < 2 ? body.Length : 2 + ((body[0] << 8) | body[1]) + (qos > 0 ? 2 : 0);

    private static int ValueSize(byte id, ReadOnlySpan<byte> value) => id switch
    {
        // Byte: Payload Format Indicator, Request Problem/Response Information, Maximum QoS, Retain/Wildcard/
        // Subscription Identifier/Shared Subscription Available.
        0x01 or 0x17 or 0x19 or 0x24 or 0x25 or 0x28 or 0x29 or 0x2A => 1,

        // Two-byte integer: Server Keep Alive, Receive Maximum, Topic Alias Maximum, Topic Alias.
        0x13 or 0x21 or 0x22 or 0x23 => 2,

        // Four-byte integer: Message Expiry, Session Expiry, Will Delay Interval, Maximum Packet Size.
        0x02 or 0x11 or 0x18 or 0x27 => 4,

        // UTF-8 string or binary data: two-byte length first.
        0x03 or 0x08 or 0x09 or 0x12 or 0x15 or 0x16 or 0x1A or 0x1C or 0x1F => PrefixedSize(value),

        // User Property: a string pair.
        0x26 => PairSize(value),

        // Subscription Identifier: a variable byte integer.
        0x0B => VariableByteIntegerSize(value),
        _ => -1,
    };

    private static int PrefixedSize(ReadOnlySpan<byte> value) => value.Length < 2 ? -1 : 2 + ((value[0] << 8) | value[1]);

    private static int PairSize(ReadOnlySpan<byte> value)
    {
        var first = PrefixedSize(value);
        if (first < 0 || first > value.Length)
        {
            return -1;
        }

        var second = PrefixedSize(value[first..]);
        return second < 0 ? -1 : first + second;
    }

    private static int VariableByteIntegerSize(ReadOnlySpan<byte> value)
    {
        var position = 0;
        return VariableByteInteger.TryRead(value, ref position, out _) ? position : -1;
    }
}
