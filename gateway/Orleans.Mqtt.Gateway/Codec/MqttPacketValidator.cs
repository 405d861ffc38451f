using System.Buffers.Binary;
using System.Text.Unicode;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Orleans.Mqtt.Gateway.Codec;

/// <summary>Why <see cref="MqttPacketValidator"/> refused a packet.</summary>
internal enum MqttRefusalKind : byte
{
    /// <summary>The packet cannot be parsed as the specification says (MQTT 5 reason code 0x81).</summary>
    MalformedPacket,

    /// <summary>A UTF-8 string field is not well-formed UTF-8 or contains U+0000: a malformed packet (0x81).</summary>
    InvalidUtf8,

    /// <summary>The packet parses but carries what the protocol forbids (MQTT 5 reason code 0x82).</summary>
    ProtocolError,

    /// <summary>A packet identifier of 0 where one is required [MQTT-2.2.1-3]: a protocol error (0x82).</summary>
    PacketIdentifierZero,

    /// <summary>CONNECT names a protocol or level the broker does not speak.</summary>
    UnsupportedProtocolVersion,
}

/// <summary>
/// A refused packet: the kind of refusal, a short text for the log, and for CONNECT the protocol version the
/// packet asked for (so a v5 client gets a CONNACK with the reason code and a v3.1.1 client just a closed connection).
/// </summary>
internal readonly record struct MqttPacketRefusal(MqttRefusalKind Kind, string Detail, MqttProtocolVersion ConnectVersion = MqttProtocolVersion.Unknown)
{
    /// <summary>The tag value of the rejected-packets metric.</summary>
    public string MetricReason => Kind switch
    {
        MqttRefusalKind.InvalidUtf8 => "invalid_utf8",
        MqttRefusalKind.ProtocolError => "protocol_error",
        MqttRefusalKind.PacketIdentifierZero => "packet_id_zero",
        MqttRefusalKind.UnsupportedProtocolVersion => "unsupported_protocol_version",
        _ => "malformed_packet",
    };

    /// <summary>The MQTT 5 DISCONNECT reason code.</summary>
    public MqttDisconnectReasonCode DisconnectReasonCode => Kind switch
    {
        MqttRefusalKind.ProtocolError or MqttRefusalKind.PacketIdentifierZero => MqttDisconnectReasonCode.ProtocolError,
        _ => MqttDisconnectReasonCode.MalformedPacket,
    };

    /// <summary>The MQTT 5 CONNACK reason code, for a refused CONNECT.</summary>
    public MqttConnectReasonCode ConnectReasonCode => Kind switch
    {
        MqttRefusalKind.ProtocolError or MqttRefusalKind.PacketIdentifierZero => MqttConnectReasonCode.ProtocolError,
        MqttRefusalKind.UnsupportedProtocolVersion => MqttConnectReasonCode.UnsupportedProtocolVersion,
        _ => MqttConnectReasonCode.MalformedPacket,
    };
}

/// <summary>
/// Strict wire-level checks of one packet a client sent, before anything decodes or acts on it: fixed-header flags,
/// lengths, packet identifiers, CONNECT flags, MQTT 5 properties (allowed for the packet type, not repeated, values
/// in range), and every UTF-8 string well-formed without U+0000 (MQTT 3.1.1 section 1.5.3, MQTT 5 section 1.5.4).
/// </summary>
/// <remarks>
/// Span-based and allocation-free for packets it accepts; a refusal carries a constant text. What a packet means
/// for the session (topic name syntax, topic alias range, authentication) is left to the connection.
/// </remarks>
internal static class MqttPacketValidator
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
    /// Checks one packet. <paramref name="version"/> is the connection's protocol version, or
    /// <see cref="MqttProtocolVersion.Unknown"/> before CONNECT (the CONNECT's own protocol level decides then).
    /// </summary>
    /// <param name="fixedHeader">The first byte of the packet: type and flags.</param>
    /// <param name="body">The bytes after the remaining length: exactly the remaining length of them.</param>
    /// <param name="version">The protocol version agreed at CONNECT, or Unknown for the first packet.</param>
    /// <param name="refusal">Why the packet was refused; default when it was accepted.</param>
    /// <returns>Whether the packet may be decoded and handled.</returns>
    public static bool Validate(byte fixedHeader, ReadOnlySpan<byte> body, MqttProtocolVersion version, out MqttPacketRefusal refusal)
    {
        refusal = default;
        var v5 = version == MqttProtocolVersion.V500;
        var flags = fixedHeader & 0x0F;
        var type = (MqttControlPacketType)(fixedHeader >> 4);
        if (version == MqttProtocolVersion.Unknown && type != MqttControlPacketType.Connect)
        {
            return Refuse(MqttRefusalKind.ProtocolError, "first packet is not CONNECT", out refusal);
        }

        switch (type)
        {
            case MqttControlPacketType.Connect:
                if (version != MqttProtocolVersion.Unknown)
                {
                    return Refuse(MqttRefusalKind.ProtocolError, "second CONNECT", out refusal);
                }

                return ValidateConnect(flags, body, out refusal);

            case MqttControlPacketType.Publish:
                return ValidatePublish(flags, body, v5, out refusal);

            case MqttControlPacketType.PubAck:
            case MqttControlPacketType.PubRec:
            case MqttControlPacketType.PubRel:
            case MqttControlPacketType.PubComp:
                var expectedFlags = type == MqttControlPacketType.PubRel ? 0x02 : 0;
                if (flags != expectedFlags)
                {
                    return Refuse(MqttRefusalKind.MalformedPacket, "reserved fixed-header flags", out refusal);
                }

                return ValidateAcknowledgement(type, body, v5, out refusal);

            case MqttControlPacketType.Subscribe:
                return flags != 0x02
                    ? Refuse(MqttRefusalKind.MalformedPacket, "SUBSCRIBE fixed-header flags are not 0010", out refusal)
                    : ValidateSubscribe(body, v5, out refusal);

            case MqttControlPacketType.Unsubscribe:
                return flags != 0x02
                    ? Refuse(MqttRefusalKind.MalformedPacket, "UNSUBSCRIBE fixed-header flags are not 0010", out refusal)
                    : ValidateUnsubscribe(body, v5, out refusal);

            case MqttControlPacketType.PingReq:
                if (flags != 0)
                {
                    return Refuse(MqttRefusalKind.MalformedPacket, "reserved fixed-header flags", out refusal);
                }

                return body.Length == 0 || Refuse(MqttRefusalKind.MalformedPacket, "PINGREQ with a body", out refusal);

            case MqttControlPacketType.Disconnect:
                if (flags != 0)
                {
                    return Refuse(MqttRefusalKind.MalformedPacket, "reserved fixed-header flags", out refusal);
                }

                if (!v5)
                {
                    return body.Length == 0 || Refuse(MqttRefusalKind.MalformedPacket, "DISCONNECT with a body", out refusal);
                }

                // Reason code and properties may each be left out (MQTT 5 section 3.14.2).
                return body.Length <= 1 || ValidateProperties(body, 1, PropertySet.Disconnect, expectEnd: true, out _, out refusal);

            case MqttControlPacketType.Auth:
                if (!v5)
                {
                    return Refuse(MqttRefusalKind.MalformedPacket, "packet type 15 is reserved in MQTT 3.1.1", out refusal);
                }

                if (flags != 0)
                {
                    return Refuse(MqttRefusalKind.MalformedPacket, "reserved fixed-header flags", out refusal);
                }

                if (body.Length == 0)
                {
                    return true;
                }

                if (body[0] is not ((byte)MqttAuthenticateReasonCode.Success or (byte)MqttAuthenticateReasonCode.ContinueAuthentication or (byte)MqttAuthenticateReasonCode.ReAuthenticate))
                {
                    return Refuse(MqttRefusalKind.ProtocolError, "AUTH reason code not allowed", out refusal);
                }

                return body.Length == 1 || ValidateProperties(body, 1, PropertySet.Auth, expectEnd: true, out _, out refusal);

            case MqttControlPacketType.ConnAck:
            case MqttControlPacketType.SubAck:
            case MqttControlPacketType.UnsubAck:
            case MqttControlPacketType.PingResp:
                return Refuse(MqttRefusalKind.ProtocolError, "a packet only a server sends", out refusal);

            default:
                return Refuse(MqttRefusalKind.MalformedPacket, "reserved packet type 0", out refusal);
        }
    }

    private static bool ValidateConnect(int flags, ReadOnlySpan<byte> body, out MqttPacketRefusal refusal)
    {
        refusal = default;
        if (flags != 0)
        {
            return Refuse(MqttRefusalKind.MalformedPacket, "CONNECT fixed-header flags are not 0", out refusal);
        }

        var position = 0;
        if (!TryReadLengthPrefixed(body, ref position, out var name) || position + 4 > body.Length)
        {
            return Refuse(MqttRefusalKind.MalformedPacket, "CONNECT variable header truncated", out refusal);
        }

        var level = body[position];
        var version = (name.SequenceEqual("MQTT"u8), level) switch
        {
            (true, 5) => MqttProtocolVersion.V500,
            (true, 4) => MqttProtocolVersion.V311,
            _ when name.SequenceEqual("MQIsdp"u8) && level == 3 => MqttProtocolVersion.V310,
            _ => MqttProtocolVersion.Unknown,
        };

        if (version == MqttProtocolVersion.Unknown)
        {
            return Refuse(MqttRefusalKind.UnsupportedProtocolVersion, "unsupported protocol name or level", out refusal);
        }

        var v5 = version == MqttProtocolVersion.V500;
        var connectFlags = body[position + 1];
        position += 4; // level, flags, keep alive
        if (!ValidateConnectFlags(connectFlags, v5, out refusal))
        {
            return Refuse(refusal.Kind, refusal.Detail, version, out refusal);
        }

        if (v5 && !ValidateProperties(body, position, PropertySet.Connect, expectEnd: false, out position, out refusal))
        {
            return Refuse(refusal.Kind, refusal.Detail, version, out refusal);
        }

        if (!ValidateConnectPayload(body, position, connectFlags, v5, out refusal))
        {
            return Refuse(refusal.Kind, refusal.Detail, version, out refusal);
        }

        return true;
    }

    private static bool ValidateConnectFlags(byte connectFlags, bool v5, out MqttPacketRefusal refusal)
    {
        refusal = default;
        if ((connectFlags & 0x01) != 0)
        {
            // [MQTT-3.1.2-3]: the reserved flag must be 0.
            return Refuse(MqttRefusalKind.MalformedPacket, "CONNECT reserved flag is set", out refusal);
        }

        var will = (connectFlags & 0x04) != 0;
        var willQos = (connectFlags >> 3) & 0x03;
        var willRetain = (connectFlags & 0x20) != 0;
        if (willQos == 3)
        {
            // [MQTT-3.1.2-14] (3.1.1) / [MQTT-3.1.2-12] (5): will QoS 3 is malformed.
            return Refuse(MqttRefusalKind.MalformedPacket, "will QoS 3", out refusal);
        }

        if (!will && (willQos != 0 || willRetain))
        {
            // [MQTT-3.1.2-13], [MQTT-3.1.2-15] (3.1.1) / [MQTT-3.1.2-11], [MQTT-3.1.2-13] (5).
            return Refuse(MqttRefusalKind.MalformedPacket, "will QoS or will retain without the will flag", out refusal);
        }

        if (!v5 && (connectFlags & 0xC0) == 0x40)
        {
            // [MQTT-3.1.2-22] (3.1.1 only; MQTT 5 allows a password without a user name).
            return Refuse(MqttRefusalKind.MalformedPacket, "password flag without the user name flag", out refusal);
        }

        return true;
    }

    private static bool ValidateConnectPayload(ReadOnlySpan<byte> body, int position, byte connectFlags, bool v5, out MqttPacketRefusal refusal)
    {
        if (!ValidateString(body, ref position, "client identifier", out refusal))
        {
            return false;
        }

        if ((connectFlags & 0x04) != 0)
        {
            if (v5 && !ValidateProperties(body, position, PropertySet.Will, expectEnd: false, out position, out refusal))
            {
                return false;
            }

            if (!ValidateString(body, ref position, "will topic", out refusal))
            {
                return false;
            }

            if (!TryReadLengthPrefixed(body, ref position, out _))
            {
                return Refuse(MqttRefusalKind.MalformedPacket, "will payload truncated", out refusal);
            }
        }

        if ((connectFlags & 0x80) != 0 && !ValidateString(body, ref position, "user name", out refusal))
        {
            return false;
        }

        if ((connectFlags & 0x40) != 0 && !TryReadLengthPrefixed(body, ref position, out _))
        {
            return Refuse(MqttRefusalKind.MalformedPacket, "password truncated", out refusal);
        }

        return position == body.Length || Refuse(MqttRefusalKind.MalformedPacket, "bytes after the CONNECT payload", out refusal);
    }

    private static bool ValidatePublish(int flags, ReadOnlySpan<byte> body, bool v5, out MqttPacketRefusal refusal)
    {
        refusal = default;
        var qos = (flags >> 1) & 0x03;
        if (qos == 3)
        {
            // [MQTT-3.3.1-4]: both QoS bits set is malformed.
            return Refuse(MqttRefusalKind.MalformedPacket, "PUBLISH QoS 3", out refusal);
        }

        if (qos == 0 && (flags & 0x08) != 0)
        {
            // [MQTT-3.3.1-2]: DUP must be 0 for QoS 0.
            return Refuse(MqttRefusalKind.MalformedPacket, "DUP set on a QoS 0 PUBLISH", out refusal);
        }

        var position = 0;
        if (!ValidateString(body, ref position, "topic name", out refusal))
        {
            return false;
        }

        if (qos > 0 && !ValidatePacketIdentifier(body, ref position, out refusal))
        {
            return false;
        }

        // The rest is the payload: any bytes.
        return !v5 || ValidateProperties(body, position, PropertySet.Publish, expectEnd: false, out _, out refusal);
    }

    private static bool ValidateAcknowledgement(MqttControlPacketType type, ReadOnlySpan<byte> body, bool v5, out MqttPacketRefusal refusal)
    {
        var position = 0;
        if (!ValidatePacketIdentifier(body, ref position, out refusal))
        {
            return false;
        }

        if (!v5 || body.Length == 2)
        {
            return body.Length == 2 || Refuse(MqttRefusalKind.MalformedPacket, "acknowledgement longer than 2 bytes", out refusal);
        }

        var known = type is MqttControlPacketType.PubRel or MqttControlPacketType.PubComp
            ? (MqttPubRelReasonCode)body[2] is MqttPubRelReasonCode.Success or MqttPubRelReasonCode.PacketIdentifierNotFound
            : (MqttPubAckReasonCode)body[2] is MqttPubAckReasonCode.Success or MqttPubAckReasonCode.NoMatchingSubscribers
                or MqttPubAckReasonCode.UnspecifiedError or MqttPubAckReasonCode.ImplementationSpecificError or MqttPubAckReasonCode.NotAuthorized
                or MqttPubAckReasonCode.TopicNameInvalid or MqttPubAckReasonCode.PacketIdentifierInUse or MqttPubAckReasonCode.QuotaExceeded
                or MqttPubAckReasonCode.PayloadFormatInvalid;
        if (!known)
        {
            return Refuse(MqttRefusalKind.ProtocolError, "reason code not allowed for this acknowledgement", out refusal);
        }

        return body.Length == 3 || ValidateProperties(body, 3, PropertySet.Acknowledgement, expectEnd: true, out _, out refusal);
    }

    private static bool ValidateSubscribe(ReadOnlySpan<byte> body, bool v5, out MqttPacketRefusal refusal)
    {
        var position = 0;
        if (!ValidatePacketIdentifier(body, ref position, out refusal))
        {
            return false;
        }

        if (v5 && !ValidateProperties(body, position, PropertySet.Subscribe, expectEnd: false, out position, out refusal))
        {
            return false;
        }

        if (position == body.Length)
        {
            // [MQTT-3.8.3-3] (both versions): at least one filter.
            return Refuse(MqttRefusalKind.ProtocolError, "SUBSCRIBE without topic filters", out refusal);
        }

        while (position < body.Length)
        {
            var filterStart = position;
            if (!ValidateString(body, ref position, "topic filter", out refusal))
            {
                return false;
            }

            if (position >= body.Length)
            {
                return Refuse(MqttRefusalKind.MalformedPacket, "subscription options missing", out refusal);
            }

            var options = body[position++];
            if ((options & (v5 ? 0xC0 : 0xFC)) != 0)
            {
                // [MQTT-3-8.3-4] (3.1.1) / [MQTT-3.8.3-5] (5): reserved bits of the options are 0.
                return Refuse(MqttRefusalKind.MalformedPacket, "reserved subscription option bits set", out refusal);
            }

            if ((options & 0x03) == 3)
            {
                return Refuse(v5 ? MqttRefusalKind.ProtocolError : MqttRefusalKind.MalformedPacket, "subscription QoS 3", out refusal);
            }

            if (v5 && (options & 0x30) == 0x30)
            {
                return Refuse(MqttRefusalKind.ProtocolError, "Retain Handling 3", out refusal);
            }

            if (v5 && (options & 0x04) != 0 && body.Slice(filterStart + 2, position - filterStart - 3).StartsWith("$share/"u8))
            {
                // [MQTT-3.8.3-4]: No Local on a shared subscription.
                return Refuse(MqttRefusalKind.ProtocolError, "No Local on a shared subscription", out refusal);
            }
        }

        return true;
    }

    private static bool ValidateUnsubscribe(ReadOnlySpan<byte> body, bool v5, out MqttPacketRefusal refusal)
    {
        var position = 0;
        if (!ValidatePacketIdentifier(body, ref position, out refusal))
        {
            return false;
        }

        if (v5 && !ValidateProperties(body, position, PropertySet.Unsubscribe, expectEnd: false, out position, out refusal))
        {
            return false;
        }

        if (position == body.Length)
        {
            // [MQTT-3.10.3-2]: at least one filter.
            return Refuse(MqttRefusalKind.ProtocolError, "UNSUBSCRIBE without topic filters", out refusal);
        }

        while (position < body.Length)
        {
            if (!ValidateString(body, ref position, "topic filter", out refusal))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Walks the property block at <paramref name="offset"/>: its length inside the packet, each identifier allowed
    /// in <paramref name="set"/>, none repeated but User Property, values of the right shape and range.
    /// </summary>
    private static bool ValidateProperties(ReadOnlySpan<byte> body, int offset, PropertySet set, bool expectEnd, out int end, out MqttPacketRefusal refusal)
    {
        end = offset;
        refusal = default;
        var position = offset;
        if (!TryReadVariableByteInteger(body, ref position, out var length) || length > body.Length - position)
        {
            return Refuse(MqttRefusalKind.MalformedPacket, "property length", out refusal);
        }

        end = position + length;
        if (expectEnd && end != body.Length)
        {
            return Refuse(MqttRefusalKind.MalformedPacket, "bytes after the properties", out refusal);
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
                return Refuse(MqttRefusalKind.MalformedPacket, "property not allowed in this packet", out refusal);
            }

            if (id != UserProperty)
            {
                if ((seen & (1UL << id)) != 0)
                {
                    return Refuse(MqttRefusalKind.ProtocolError, "property included more than once", out refusal);
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
            return Refuse(MqttRefusalKind.ProtocolError, "Authentication Data without Authentication Method", out refusal);
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
                    return Refuse(MqttRefusalKind.MalformedPacket, "property value truncated", out refusal);
                }

                return block[position++] <= 1 || Refuse(MqttRefusalKind.ProtocolError, "byte property other than 0 or 1", out refusal);

            case ReceiveMaximum:
            case TopicAliasMaximum:
            case TopicAlias:
                if (position + 2 > block.Length)
                {
                    return Refuse(MqttRefusalKind.MalformedPacket, "property value truncated", out refusal);
                }

                var twoByte = BinaryPrimitives.ReadUInt16BigEndian(block[position..]);
                position += 2;

                // Topic Alias 0 is answered by the connection with 0x94 Topic Alias Invalid (MQTT 5 section 3.3.2.3.4).
                return twoByte != 0 || id != ReceiveMaximum || Refuse(MqttRefusalKind.ProtocolError, "Receive Maximum 0", out refusal);

            case MessageExpiryInterval:
            case SessionExpiryInterval:
            case WillDelayInterval:
            case MaximumPacketSize:
                if (position + 4 > block.Length)
                {
                    return Refuse(MqttRefusalKind.MalformedPacket, "property value truncated", out refusal);
                }

                var fourByte = BinaryPrimitives.ReadUInt32BigEndian(block[position..]);
                position += 4;
                return fourByte != 0 || id != MaximumPacketSize || Refuse(MqttRefusalKind.ProtocolError, "Maximum Packet Size 0", out refusal);

            case SubscriptionIdentifier:
                if (set == PropertySet.Publish)
                {
                    // [MQTT-3.3.4-6]: a PUBLISH from a client never carries a Subscription Identifier.
                    return Refuse(MqttRefusalKind.ProtocolError, "PUBLISH from a client carries a Subscription Identifier", out refusal);
                }

                if (!TryReadVariableByteInteger(block, ref position, out var subscriptionId))
                {
                    return Refuse(MqttRefusalKind.MalformedPacket, "Subscription Identifier", out refusal);
                }

                return subscriptionId != 0 || Refuse(MqttRefusalKind.ProtocolError, "Subscription Identifier 0", out refusal);

            case CorrelationData:
            case AuthenticationData:
                return TryReadLengthPrefixed(block, ref position, out _) || Refuse(MqttRefusalKind.MalformedPacket, "property value truncated", out refusal);

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
                    || Refuse(MqttRefusalKind.ProtocolError, "Response Topic with wildcards", out refusal);

            default:
                // Content Type, Authentication Method, Reason String, Server Reference: UTF-8 strings.
                return ValidateString(block, ref position, "string property", out refusal);
        }
    }

    private static bool ValidatePacketIdentifier(ReadOnlySpan<byte> body, ref int position, out MqttPacketRefusal refusal)
    {
        refusal = default;
        if (position + 2 > body.Length)
        {
            return Refuse(MqttRefusalKind.MalformedPacket, "packet identifier truncated", out refusal);
        }

        var id = BinaryPrimitives.ReadUInt16BigEndian(body[position..]);
        position += 2;
        return id != 0 || Refuse(MqttRefusalKind.PacketIdentifierZero, "packet identifier 0", out refusal);
    }

    /// <summary>A UTF-8 encoded string: length inside the packet, well-formed, no U+0000 (surrogates are ill-formed UTF-8).</summary>
    private static bool ValidateString(ReadOnlySpan<byte> body, ref int position, string field, out MqttPacketRefusal refusal)
    {
        refusal = default;
        if (!TryReadLengthPrefixed(body, ref position, out var text))
        {
            return Refuse(MqttRefusalKind.MalformedPacket, field + " length is outside the packet", out refusal);
        }

        return IsWellFormed(text) || Refuse(MqttRefusalKind.InvalidUtf8, field + " is not well-formed UTF-8 or contains U+0000", out refusal);
    }

    /// <summary>Well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF) without U+0000.</summary>
    internal static bool IsWellFormed(ReadOnlySpan<byte> text) => text.IndexOf((byte)0) < 0 && Utf8.IsValid(text);

    private static bool TryReadLengthPrefixed(ReadOnlySpan<byte> body, ref int position, out ReadOnlySpan<byte> value)
    {
        value = default;
        if (position + 2 > body.Length)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(body[position..]);
        if (length > body.Length - position - 2)
        {
            return false;
        }

        value = body.Slice(position + 2, length);
        position += 2 + length;
        return true;
    }

    private static bool TryReadVariableByteInteger(ReadOnlySpan<byte> body, ref int position, out int value)
    {
        value = 0;
        for (var i = 0; i < 4; i++)
        {
            if (position >= body.Length)
            {
                return false;
            }

            var b = body[position++];
            value |= (b & 0x7F) << (7 * i);
            if ((b & 0x80) == 0)
            {
                // The minimum number of bytes must be used (section 1.5.5): a trailing 0x00 after a continuation is not.
                return i == 0 || b != 0;
            }
        }

        return false;
    }

    private static bool Refuse(MqttRefusalKind kind, string detail, out MqttPacketRefusal refusal) => Refuse(kind, detail, MqttProtocolVersion.Unknown, out refusal);

    private static bool Refuse(MqttRefusalKind kind, string detail, MqttProtocolVersion connectVersion, out MqttPacketRefusal refusal)
    {
        refusal = new MqttPacketRefusal(kind, detail, connectVersion);
        return false;
    }

    private static ulong Bits(params ReadOnlySpan<byte> ids)
    {
        ulong bits = 0;
        foreach (var id in ids)
        {
            bits |= 1UL << id;
        }

        return bits;
    }
}
