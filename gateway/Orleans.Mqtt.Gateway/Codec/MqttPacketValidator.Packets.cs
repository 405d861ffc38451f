using MQTTnet.Protocol;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

// The packets after CONNECT: PUBLISH, the acknowledgements, SUBSCRIBE and UNSUBSCRIBE.
internal static partial class MqttPacketValidator
{
    private static bool ValidatePublish(int flags, ReadOnlySpan<byte> body, bool v5, out MqttPacketRefusal refusal)
    {
        refusal = default;
        var qos = (flags >> 1) & 0x03;
        if (qos == 3)
        {
            // [MQTT-3.3.1-4]: both QoS bits set is malformed.
            return Refuse(CloseReason.MalformedPacket, "PUBLISH QoS 3", out refusal);
        }

        if (qos == 0 && (flags & 0x08) != 0)
        {
            // [MQTT-3.3.1-2]: DUP must be 0 for QoS 0.
            return Refuse(CloseReason.MalformedPacket, "DUP set on a QoS 0 PUBLISH", out refusal);
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
            return body.Length == 2 || Refuse(CloseReason.MalformedPacket, "acknowledgement longer than 2 bytes", out refusal);
        }

        var known = type is MqttControlPacketType.PubRel or MqttControlPacketType.PubComp
            ? (MqttPubRelReasonCode)body[2] is MqttPubRelReasonCode.Success or MqttPubRelReasonCode.PacketIdentifierNotFound
            : (MqttPubAckReasonCode)body[2] is MqttPubAckReasonCode.Success or MqttPubAckReasonCode.NoMatchingSubscribers
                or MqttPubAckReasonCode.UnspecifiedError or MqttPubAckReasonCode.ImplementationSpecificError or MqttPubAckReasonCode.NotAuthorized
                or MqttPubAckReasonCode.TopicNameInvalid or MqttPubAckReasonCode.PacketIdentifierInUse or MqttPubAckReasonCode.QuotaExceeded
                or MqttPubAckReasonCode.PayloadFormatInvalid;
        if (!known)
        {
            return Refuse(CloseReason.ProtocolError, "reason code not allowed for this acknowledgement", out refusal);
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
            return Refuse(CloseReason.ProtocolError, "SUBSCRIBE without topic filters", out refusal);
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
                return Refuse(CloseReason.MalformedPacket, "subscription options missing", out refusal);
            }

            var options = body[position++];
            if ((options & (v5 ? 0xC0 : 0xFC)) != 0)
            {
                // [MQTT-3-8.3-4] (3.1.1) / [MQTT-3.8.3-5] (5): reserved bits of the options are 0.
                return Refuse(CloseReason.MalformedPacket, "reserved subscription option bits set", out refusal);
            }

            if ((options & 0x03) == 3)
            {
                return Refuse(v5 ? CloseReason.ProtocolError : CloseReason.MalformedPacket, "subscription QoS 3", out refusal);
            }

            if (v5 && (options & 0x30) == 0x30)
            {
                return Refuse(CloseReason.ProtocolError, "Retain Handling 3", out refusal);
            }

            if (v5 && (options & 0x04) != 0 && body.Slice(filterStart + 2, position - filterStart - 3).StartsWith("$share/"u8))
            {
                // [MQTT-3.8.3-4]: No Local on a shared subscription.
                return Refuse(CloseReason.ProtocolError, "No Local on a shared subscription", out refusal);
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
            return Refuse(CloseReason.ProtocolError, "UNSUBSCRIBE without topic filters", out refusal);
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
}
