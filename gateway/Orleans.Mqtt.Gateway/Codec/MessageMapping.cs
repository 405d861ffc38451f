using System.Buffers;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Gateway;

/// <summary>Converts between MQTTnet's packets and the broker's messages; MQTT 5 properties pass through unchanged.</summary>
internal static class MessageMapping
{
    public static MessageProperties? Properties(MqttPublishPacket p) =>
        Create(p.ContentType, p.ResponseTopic, p.CorrelationData, p.PayloadFormatIndicator, p.MessageExpiryInterval, p.UserProperties);

    public static MessageProperties? WillProperties(MqttConnectPacket c) =>
        Create(c.WillContentType, c.WillResponseTopic, c.WillCorrelationData, c.WillPayloadFormatIndicator, c.WillMessageExpiryInterval, c.WillUserProperties);

    /// <summary>
    /// The PUBLISH for a delivery. MQTT 5 clients get the Message Expiry Interval that is left at
    /// <paramref name="nowUtc"/>, not the one the message was published with [MQTT-3.3.2-6].
    /// </summary>
    public static MqttPublishPacket ToPublish(Delivery d, bool v5, DateTime nowUtc)
    {
        var m = d.Message;
        var packet = new MqttPublishPacket
        {
            Topic = m.Topic,
            Payload = new ReadOnlySequence<byte>(m.Payload),
            QualityOfServiceLevel = (MqttQualityOfServiceLevel)d.Qos,
            Retain = d.Retain,
            PacketIdentifier = d.Qos == 0 ? (ushort)0 : d.PacketId,
            Dup = d.Dup && d.Qos > 0,
        };

        if (v5)
        {
            if (m.Properties is { } p)
            {
                packet.ContentType = p.ContentType;
                packet.ResponseTopic = p.ResponseTopic;
                packet.CorrelationData = p.CorrelationData;
                packet.PayloadFormatIndicator = (MqttPayloadFormatIndicator)p.PayloadFormatIndicator;
                if (p.UserProperties is { } props)
                {
                    packet.UserProperties = new List<MqttUserProperty>(props.Length);
                    foreach (var up in props)
                    {
                        packet.UserProperties.Add(new MqttUserProperty(up.Name, System.Text.Encoding.UTF8.GetBytes(up.Value).AsMemory()));
                    }
                }
            }

            // A message nobody stamped with an expiry time (one from before stamping existed) keeps the interval it
            // was published with rather than losing it.
            packet.MessageExpiryInterval = m.ExpiresAtUtc is null
                ? m.Properties?.MessageExpiryInterval ?? 0
                : m.RemainingExpiryInterval(nowUtc);

            if (d.SubscriptionIds is { Length: > 0 } ids)
            {
                packet.SubscriptionIdentifiers = [.. ids];
            }
        }

        return packet;
    }

    private static MessageProperties? Create(
        string? contentType,
        string? responseTopic,
        byte[]? correlationData,
        MqttPayloadFormatIndicator payloadFormat,
        uint messageExpiryInterval,
        List<MqttUserProperty>? userProperties)
    {
        if (contentType is null && responseTopic is null && correlationData is null && userProperties is not { Count: > 0 }
            && messageExpiryInterval == 0 && payloadFormat == MqttPayloadFormatIndicator.Unspecified)
        {
            return null;
        }

        return new MessageProperties
        {
            ContentType = contentType,
            ResponseTopic = responseTopic,
            CorrelationData = correlationData,
            PayloadFormatIndicator = (byte)payloadFormat,
            MessageExpiryInterval = messageExpiryInterval,
            UserProperties = ToUserProperties(userProperties),
        };
    }

    private static UserProperty[]? ToUserProperties(List<MqttUserProperty>? list)
    {
        if (list is not { Count: > 0 })
        {
            return null;
        }

        var result = new UserProperty[list.Count];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = new UserProperty(list[i].Name, list[i].ReadValueAsString());
        }

        return result;
    }
}
