using System.Buffers.Binary;
using System.Text.Unicode;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Strict wire-level checks of one packet a client sent, before anything decodes or acts on it: fixed-header flags,
/// lengths, packet identifiers, CONNECT flags, MQTT 5 properties (allowed for the packet type, not repeated, values
/// in range), and every UTF-8 string well-formed without U+0000 (MQTT 3.1.1 section 1.5.3, MQTT 5 section 1.5.4).
/// </summary>
/// <remarks>
/// Span-based and allocation-free for packets it accepts; a refusal carries a constant text. What a packet means
/// for the session (topic name syntax, topic alias range, authentication) is left to the connection.
/// </remarks>
internal static partial class MqttPacketValidator
{
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
            return Refuse(CloseReason.ProtocolError, "first packet is not CONNECT", out refusal);
        }

        switch (type)
        {
            case MqttControlPacketType.Connect:
                if (version != MqttProtocolVersion.Unknown)
                {
                    return Refuse(CloseReason.ProtocolError, "second CONNECT", out refusal);
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
                    return Refuse(CloseReason.MalformedPacket, "reserved fixed-header flags", out refusal);
                }

                return ValidateAcknowledgement(type, body, v5, out refusal);

            case MqttControlPacketType.Subscribe:
                return flags != 0x02
                    ? Refuse(CloseReason.MalformedPacket, "SUBSCRIBE fixed-header flags are not 0010", out refusal)
                    : ValidateSubscribe(body, v5, out refusal);

            case MqttControlPacketType.Unsubscribe:
                return flags != 0x02
                    ? Refuse(CloseReason.MalformedPacket, "UNSUBSCRIBE fixed-header flags are not 0010", out refusal)
                    : ValidateUnsubscribe(body, v5, out refusal);

            case MqttControlPacketType.PingReq:
                if (flags != 0)
                {
                    return Refuse(CloseReason.MalformedPacket, "reserved fixed-header flags", out refusal);
                }

                return body.Length == 0 || Refuse(CloseReason.MalformedPacket, "PINGREQ with a body", out refusal);

            case MqttControlPacketType.Disconnect:
                if (flags != 0)
                {
                    return Refuse(CloseReason.MalformedPacket, "reserved fixed-header flags", out refusal);
                }

                if (!v5)
                {
                    return body.Length == 0 || Refuse(CloseReason.MalformedPacket, "DISCONNECT with a body", out refusal);
                }

                // Reason code and properties may each be left out (MQTT 5 section 3.14.2).
                return body.Length <= 1 || ValidateProperties(body, 1, PropertySet.Disconnect, expectEnd: true, out _, out refusal);

            case MqttControlPacketType.Auth:
                if (!v5)
                {
                    return Refuse(CloseReason.MalformedPacket, "packet type 15 is reserved in MQTT 3.1.1", out refusal);
                }

                if (flags != 0)
                {
                    return Refuse(CloseReason.MalformedPacket, "reserved fixed-header flags", out refusal);
                }

                if (body.Length == 0)
                {
                    return true;
                }

                if (body[0] is not ((byte)MqttAuthenticateReasonCode.Success or (byte)MqttAuthenticateReasonCode.ContinueAuthentication or (byte)MqttAuthenticateReasonCode.ReAuthenticate))
                {
                    return Refuse(CloseReason.ProtocolError, "AUTH reason code not allowed", out refusal);
                }

                return body.Length == 1 || ValidateProperties(body, 1, PropertySet.Auth, expectEnd: true, out _, out refusal);

            case MqttControlPacketType.ConnAck:
            case MqttControlPacketType.SubAck:
            case MqttControlPacketType.UnsubAck:
            case MqttControlPacketType.PingResp:
                return Refuse(CloseReason.ProtocolError, "a packet only a server sends", out refusal);

            default:
                return Refuse(CloseReason.MalformedPacket, "reserved packet type 0", out refusal);
        }
    }

    private static bool ValidatePacketIdentifier(ReadOnlySpan<byte> body, ref int position, out MqttPacketRefusal refusal)
    {
        refusal = default;
        if (position + 2 > body.Length)
        {
            return Refuse(CloseReason.MalformedPacket, "packet identifier truncated", out refusal);
        }

        var id = BinaryPrimitives.ReadUInt16BigEndian(body[position..]);
        position += 2;
        return id != 0 || Refuse(CloseReason.PacketIdentifierZero, "packet identifier 0", out refusal);
    }

    /// <summary>A UTF-8 encoded string: length inside the packet, well-formed, no U+0000 (surrogates are ill-formed UTF-8).</summary>
    private static bool ValidateString(ReadOnlySpan<byte> body, ref int position, string field, out MqttPacketRefusal refusal)
    {
        refusal = default;
        if (!TryReadLengthPrefixed(body, ref position, out var text))
        {
            return Refuse(CloseReason.MalformedPacket, field + " length is outside the packet", out refusal);
        }

        return IsWellFormed(text) || Refuse(CloseReason.InvalidUtf8, field + " is not well-formed UTF-8 or contains U+0000", out refusal);
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

    private static bool Refuse(CloseReason reason, string detail, out MqttPacketRefusal refusal) => Refuse(reason, detail, MqttProtocolVersion.Unknown, out refusal);

    private static bool Refuse(CloseReason reason, string detail, MqttProtocolVersion connectVersion, out MqttPacketRefusal refusal)
    {
        refusal = new MqttPacketRefusal(reason, detail, connectVersion);
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
