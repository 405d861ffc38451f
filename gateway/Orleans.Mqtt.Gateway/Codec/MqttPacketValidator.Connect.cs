using MQTTnet.Formatter;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

// CONNECT: protocol name and level, flags, and the payload's fields.
internal static partial class MqttPacketValidator
{
    private static bool ValidateConnect(int flags, ReadOnlySpan<byte> body, out MqttPacketRefusal refusal)
    {
        refusal = default;
        if (flags != 0)
        {
            return Refuse(CloseReason.MalformedPacket, "CONNECT fixed-header flags are not 0", out refusal);
        }

        var position = 0;
        if (!TryReadLengthPrefixed(body, ref position, out var name) || position + 4 > body.Length)
        {
            return Refuse(CloseReason.MalformedPacket, "CONNECT variable header truncated", out refusal);
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
            return Refuse(CloseReason.UnsupportedProtocolVersion, "unsupported protocol name or level", out refusal);
        }

        var v5 = version == MqttProtocolVersion.V500;
        var connectFlags = body[position + 1];
        position += 4; // level, flags, keep alive
        if (!ValidateConnectFlags(connectFlags, v5, out refusal))
        {
            return Refuse(refusal.Reason, refusal.Detail, version, out refusal);
        }

        if (v5 && !ValidateProperties(body, position, PropertySet.Connect, expectEnd: false, out position, out refusal))
        {
            return Refuse(refusal.Reason, refusal.Detail, version, out refusal);
        }

        if (!ValidateConnectPayload(body, position, connectFlags, v5, out refusal))
        {
            return Refuse(refusal.Reason, refusal.Detail, version, out refusal);
        }

        return true;
    }

    private static bool ValidateConnectFlags(byte connectFlags, bool v5, out MqttPacketRefusal refusal)
    {
        refusal = default;
        if ((connectFlags & 0x01) != 0)
        {
            // [MQTT-3.1.2-3]: the reserved flag must be 0.
            return Refuse(CloseReason.MalformedPacket, "CONNECT reserved flag is set", out refusal);
        }

        var will = (connectFlags & 0x04) != 0;
        var willQos = (connectFlags >> 3) & 0x03;
        var willRetain = (connectFlags & 0x20) != 0;
        if (willQos == 3)
        {
            // [MQTT-3.1.2-14] (3.1.1) / [MQTT-3.1.2-12] (5): will QoS 3 is malformed.
            return Refuse(CloseReason.MalformedPacket, "will QoS 3", out refusal);
        }

        if (!will && (willQos != 0 || willRetain))
        {
            // [MQTT-3.1.2-13], [MQTT-3.1.2-15] (3.1.1) / [MQTT-3.1.2-11], [MQTT-3.1.2-13] (5).
            return Refuse(CloseReason.MalformedPacket, "will QoS or will retain without the will flag", out refusal);
        }

        if (!v5 && (connectFlags & 0xC0) == 0x40)
        {
            // [MQTT-3.1.2-22] (3.1.1 only; MQTT 5 allows a password without a user name).
            return Refuse(CloseReason.MalformedPacket, "password flag without the user name flag", out refusal);
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
                return Refuse(CloseReason.MalformedPacket, "will payload truncated", out refusal);
            }
        }

        if ((connectFlags & 0x80) != 0 && !ValidateString(body, ref position, "user name", out refusal))
        {
            return false;
        }

        if ((connectFlags & 0x40) != 0 && !TryReadLengthPrefixed(body, ref position, out _))
        {
            return Refuse(CloseReason.MalformedPacket, "password truncated", out refusal);
        }

        return position == body.Length || Refuse(CloseReason.MalformedPacket, "bytes after the CONNECT payload", out refusal);
    }
}
