using System.Buffers.Binary;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

// MQTT 5 properties: which a client may send in each packet, at most once (but User Property), with values in range.
internal static partial class MqttPacketValidator
{
    // MQTT 5 property identifiers (section 2.2.2.2).
    private const byte PayloadFormatIndicator = 0x01;
    private const byte MessageExpiryInterval = 0x02;
    private const byte ContentType = 0x03;
    private const byte ResponseTopic = 0x08;
    private const byte CorrelationData = 0x09;
    private const byte SubscriptionIdentifier = 0x0B;
    private const byte SessionExpiryInterval = 0x11;
    private const byte AuthenticationMethod = 0x15;
    private const byte AuthenticationData = 0x16;
    private const byte RequestProblemInformation = 0x17;
    private const byte WillDelayInterval = 0x18;
    private const byte RequestResponseInformation = 0x19;
    private const byte ServerReference = 0x1C;
    private const byte ReasonString = 0x1F;
    private const byte ReceiveMaximum = 0x21;
    private const byte TopicAliasMaximum = 0x22;
    private const byte TopicAlias = 0x23;
    private const byte UserProperty = 0x26;
    private const byte MaximumPacketSize = 0x27;

    /// <summary>Which properties a client may send in a packet, one bit per property identifier (all are below 64).</summary>
    private enum PropertySet : byte
    {
        Connect,
        Will,
        Publish,
        Acknowledgement,
        Subscribe,
        Unsubscribe,
        Disconnect,
        Auth,
    }

    private static readonly ulong[] Allowed =
    [
        Bits(SessionExpiryInterval, ReceiveMaximum, MaximumPacketSize, TopicAliasMaximum, RequestResponseInformation, RequestProblemInformation, UserProperty, AuthenticationMethod, AuthenticationData),
        Bits(WillDelayInterval, PayloadFormatIndicator, MessageExpiryInterval, ContentType, ResponseTopic, CorrelationData, UserProperty),

        // Subscription Identifier is a known PUBLISH property, refused on its own below: a client never sends it [MQTT-3.3.4-6].
        Bits(PayloadFormatIndicator, MessageExpiryInterval, TopicAlias, ResponseTopic, CorrelationData, UserProperty, SubscriptionIdentifier, ContentType),
        Bits(ReasonString, UserProperty),
        Bits(SubscriptionIdentifier, UserProperty),
        Bits(UserProperty),
        Bits(SessionExpiryInterval, ReasonString, UserProperty, ServerReference),
        Bits(AuthenticationMethod, AuthenticationData, ReasonString, UserProperty),
    ];

    /// <summary>
    /// Walks the property block at <paramref name="offset"/>: its length inside the packet, each identifier allowed
    /// in <paramref name="set"/>, none repeated but User Property, values of the right shape and range.
    /// </summary>
    private static bool ValidateProperties(ReadOnlySpan<byte> body, int offset, PropertySet set, bool expectEnd, out int end, out MqttPacketRefusal refusal)
    {
        end = offset;
        refusal = default;
        var position = offset;
        if (!VariableByteInteger.TryRead(body, ref position, out var length) || length > body.Length - position)
        {
            return Refuse(CloseReason.MalformedPacket, "property length", out refusal);
        }

        end = position + length;
        if (expectEnd && end != body.Length)
        {
            return Refuse(CloseReason.MalformedPacket, "bytes after the properties", out refusal);
        }

        var block = body[..end];
        var allowed = Allowed[(int)set];
        ulong seen = 0;
        while (position < end)
        {
            var id = block[position++];
            if (id >= 64 || (allowed & (1UL << id)) == 0)
            {
                // Section 2.2.2.2: an identifier not valid for the packet type is malformed.
                return Refuse(CloseReason.MalformedPacket, "property not allowed in this packet", out refusal);
            }

            if (id != UserProperty)
            {
                if ((seen & (1UL << id)) != 0)
                {
                    return Refuse(CloseReason.ProtocolError, "property included more than once", out refusal);
                }

                seen |= 1UL << id;
            }

            if (!ValidatePropertyValue(id, set, block, ref position, out refusal))
            {
                return false;
            }
        }

        if ((seen & (1UL << AuthenticationData)) != 0 && (seen & (1UL << AuthenticationMethod)) == 0)
        {
            return Refuse(CloseReason.ProtocolError, "Authentication Data without Authentication Method", out refusal);
        }

        return true;
    }

    private static bool ValidatePropertyValue(byte id, PropertySet set, ReadOnlySpan<byte> block, ref int position, out MqttPacketRefusal refusal)
    {
        refusal = default;
        switch (id)
        {
            case PayloadFormatIndicator:
            case RequestProblemInformation:
            case RequestResponseInformation:
                if (position >= block.Length)
                {
                    return Refuse(CloseReason.MalformedPacket, "property value truncated", out refusal);
                }

                return block[position++] <= 1 || Refuse(CloseReason.ProtocolError, "byte property other than 0 or 1", out refusal);

            case ReceiveMaximum:
            case TopicAliasMaximum:
            case TopicAlias:
                if (position + 2 > block.Length)
                {
                    return Refuse(CloseReason.MalformedPacket, "property value truncated", out refusal);
                }

                var twoByte = BinaryPrimitives.ReadUInt16BigEndian(block[position..]);
                position += 2;

                // Topic Alias 0 is answered by the connection with 0x94 Topic Alias Invalid (MQTT 5 section 3.3.2.3.4).
                return twoByte != 0 || id != ReceiveMaximum || Refuse(CloseReason.ProtocolError, "Receive Maximum 0", out refusal);

            case MessageExpiryInterval:
            case SessionExpiryInterval:
            case WillDelayInterval:
            case MaximumPacketSize:
                if (position + 4 > block.Length)
                {
                    return Refuse(CloseReason.MalformedPacket, "property value truncated", out refusal);
                }

                var fourByte = BinaryPrimitives.ReadUInt32BigEndian(block[position..]);
                position += 4;
                return fourByte != 0 || id != MaximumPacketSize || Refuse(CloseReason.ProtocolError, "Maximum Packet Size 0", out refusal);

            case SubscriptionIdentifier:
                if (set == PropertySet.Publish)
                {
                    // [MQTT-3.3.4-6]: a PUBLISH from a client never carries a Subscription Identifier.
                    return Refuse(CloseReason.ProtocolError, "PUBLISH from a client carries a Subscription Identifier", out refusal);
                }

                if (!VariableByteInteger.TryRead(block, ref position, out var subscriptionId))
                {
                    return Refuse(CloseReason.MalformedPacket, "Subscription Identifier", out refusal);
                }

                return subscriptionId != 0 || Refuse(CloseReason.ProtocolError, "Subscription Identifier 0", out refusal);

            case CorrelationData:
            case AuthenticationData:
                return TryReadLengthPrefixed(block, ref position, out _) || Refuse(CloseReason.MalformedPacket, "property value truncated", out refusal);

            case UserProperty:
                return ValidateString(block, ref position, "user property name", out refusal)
                    && ValidateString(block, ref position, "user property value", out refusal);

            case ResponseTopic:
                var topicStart = position;
                if (!ValidateString(block, ref position, "Response Topic", out refusal))
                {
                    return false;
                }

                // [MQTT-3.1.3-11], [MQTT-3.3.2-14]: the Response Topic is a topic name, without wildcards.
                return block[(topicStart + 2)..position].IndexOfAny((byte)'+', (byte)'#') < 0
                    || Refuse(CloseReason.ProtocolError, "Response Topic with wildcards", out refusal);

            default:
                // Content Type, Authentication Method, Reason String, Server Reference: UTF-8 strings.
                return ValidateString(block, ref position, "string property", out refusal);
        }
    }
}
