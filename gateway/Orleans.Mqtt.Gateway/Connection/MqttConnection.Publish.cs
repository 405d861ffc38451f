using System.Buffers;
using System.Diagnostics;
using System.Text.Unicode;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

// Inbound PUBLISH: topic aliases, Receive Maximum, payload format, and routing through the topic shards
// (QoS 0/1 in batches, see PublishBatcher; QoS 2 one by one with the session remembering the packet id).
internal sealed partial class MqttConnection
{
    private async Task HandlePublishAsync(MqttPublishPacket publish, ArraySegment<byte> body)
    {
        var qos = (byte)publish.QualityOfServiceLevel;
        if (qos > 2)
        {
            Reject(CloseReason.MalformedPacket, "QoS 3");
            return;
        }

        var topic = publish.Topic ?? string.Empty;
        if (_v5 && !TryResolveTopicAlias(publish, body, ref topic))
        {
            return;
        }

        if (!MqttTopic.IsValidTopicName(topic))
        {
            Reject(CloseReason.InvalidTopic, $"invalid topic name '{topic}' in PUBLISH");
            return;
        }

        if (_v5 && publish.TopicAlias != 0 && publish.Topic is { Length: > 0 })
        {
            (_inboundAliases ??= new string?[_gateway.Options.TopicAliasMaximum + 1])[publish.TopicAlias] = topic;
        }

        // After the alias is set: a later PUBLISH through it is the same topic, refused the same way.
        if (!AuthorizePublish(topic, qos, publish.PacketIdentifier))
        {
            return;
        }

        if (_v5 && qos > 0 && IsOverReceiveMaximum(qos, publish.PacketIdentifier))
        {
            Reject(CloseReason.ReceiveMaximumExceeded, $"more than Mqtt:ReceiveMaximum {_gateway.Options.ReceiveMaximum} QoS 1/2 publishes unacknowledged");
            return;
        }

        var payload = publish.Payload.IsSingleSegment ? publish.Payload.First : publish.Payload.ToArray();
        if (_v5 && publish.PayloadFormatIndicator == MqttPayloadFormatIndicator.CharacterData && !Utf8.IsValid(payload.Span))
        {
            RejectPayloadFormat(qos, publish.PacketIdentifier, topic);
            return;
        }

        if (!await AdmitPublishAsync(qos, publish.PacketIdentifier, topic, payload.Length))
        {
            return;
        }

        _gateway.Metrics.MessagesReceived.Add(1, QosTags[qos]);
        var message = new MqttMessage
        {
            Topic = topic,
            Payload = payload,
            Qos = qos,
            Retain = publish.Retain,
            SenderClientId = _clientId,
            Properties = _v5 ? MessageMapping.Properties(publish) : null,
            ExpiresAtUtc = _v5 && publish.MessageExpiryInterval > 0 ? UtcNow.AddSeconds(publish.MessageExpiryInterval) : null,
        };

        Activity? span = null;
        if (_gateway.Tracing is { } tracing && (span = tracing.StartPublish(_clientId, topic, qos, payload.Length, message.Properties)) is not null)
        {
            message = message with { TraceParent = MqttTracing.TraceParentOf(span) };
        }

        switch (qos)
        {
            case 0:
            case 1:
                if (qos == 1)
                {
                    _inboundQos1++;
                }

                await Batcher.AddPublishAsync(message, publish.PacketIdentifier, span);
                break;
            default:
                // Exactly once: a packet id already received and not yet released is not routed again. The session
                // calls are bounded like routing: a session caught in a killed silo fails the publish, not the connection.
                bool pending;
                try
                {
                    pending = await _gateway.BoundCall(_session!.IsInboundQos2Pending(publish.PacketIdentifier), _gateway.Options.PublishTimeout);
                }
                catch (Exception ex)
                {
                    PublishFailed(ex, topic, 1);
                    RefuseQos2(publish.PacketIdentifier);
                    return;
                }

                if (!pending)
                {
                    var routed = await PublishAsync(message);
                    GatewayTracing.EndPublish(span, routed);
                    if (routed < 0)
                    {
                        RefuseQos2(publish.PacketIdentifier);
                        return;
                    }

                    await _gateway.BoundCall(_session.AddInboundQos2(Id, publish.PacketIdentifier), _gateway.Options.PublishTimeout);
                }

                else
                {
                    span?.Stop();
                }

                (_inboundQos2 ??= []).Add(publish.PacketIdentifier);
                Send(ReplyPackets.PubRec(publish.PacketIdentifier));
                break;
        }
    }

    /// <summary>
    /// Applies an MQTT 5 Topic Alias: an alias with a topic sets the mapping (once the topic is known to be valid), an
    /// alias with an empty topic uses it. Returns false when the connection is closed for a bad alias.
    /// </summary>
    private bool TryResolveTopicAlias(MqttPublishPacket publish, ArraySegment<byte> body, ref string topic)
    {
        var alias = publish.TopicAlias;
        var maximum = _gateway.Options.TopicAliasMaximum;
        if (alias == 0)
        {
            // MQTTnet reads an absent alias and an alias of 0 the same way; only the latter is an error [MQTT-3.3.2-8].
            if (!MqttPropertyScan.Contains(body, MqttPropertyScan.PublishPropertiesOffset(body, (int)publish.QualityOfServiceLevel), MqttPropertyScan.TopicAlias))
            {
                return true;
            }

            Reject(CloseReason.TopicAliasInvalid, "topic alias 0");
            return false;
        }

        if (alias > maximum)
        {
            // [MQTT-3.3.2-9]
            Reject(CloseReason.TopicAliasInvalid, $"topic alias {alias} over Mqtt:TopicAliasMaximum {maximum}");
            return false;
        }

        if (topic.Length > 0)
        {
            return true;
        }

        if (_inboundAliases?[alias] is not { } mapped)
        {
            Reject(CloseReason.ProtocolError, $"topic alias {alias} used before it was set");
            return false;
        }

        topic = mapped;
        return true;
    }

    /// <summary>Whether one more QoS 1/2 publish goes over the Receive Maximum the CONNACK advertised [MQTT-3.3.4-9].</summary>
    private bool IsOverReceiveMaximum(byte qos, ushort packetId)
    {
        // A QoS 2 re-send of a packet id already PUBRECed on this connection is not a new one.
        if (qos == 2 && _inboundQos2 is not null && _inboundQos2.Contains(packetId))
        {
            return false;
        }

        // QoS 1 publishes count until their batch is routed and acknowledged, QoS 2 ones until PUBREL.
        return _inboundQos1 + (_inboundQos2?.Count ?? 0) >= _gateway.Options.ReceiveMaximum;
    }

    /// <summary>Payload Format Indicator 1 with a payload that is not UTF-8: refused with 0x99 and not routed.</summary>
    private void RejectPayloadFormat(byte qos, ushort packetId, string topic)
    {
        const CloseReason Reason = CloseReason.PayloadFormatInvalid;
        var detail = $"PUBLISH to '{topic}' says UTF-8 but its payload is not";
        switch (qos)
        {
            case 0:
                Reject(Reason, detail);
                break;
            case 1:
                CountRejected(Reason, $"{detail}; PUBACK 0x{(byte)MqttPubAckReasonCode.PayloadFormatInvalid:X2}");
                Send(ReplyPackets.PubAck(packetId, MqttPubAckReasonCode.PayloadFormatInvalid));
                break;
            default:
                CountRejected(Reason, $"{detail}; PUBREC 0x{(byte)MqttPubRecReasonCode.PayloadFormatInvalid:X2}");
                Send(ReplyPackets.PubRec(packetId, MqttPubRecReasonCode.PayloadFormatInvalid));
                break;
        }
    }

    /// <summary>Routes a message through its topic shard; returns the number of sessions it reached, or -1 on failure.</summary>
    public async Task<int> PublishAsync(MqttMessage message)
    {
        var shard = _gateway.Shard(MqttTopic.ShardOf(message.Topic, _gateway.TopicShards));
        try
        {
            return await _gateway.BoundCall(shard.Publish(message), _gateway.Options.PublishTimeout);
        }
        catch (Exception ex)
        {
            PublishFailed(ex, message.Topic, 1);
            return -1;
        }
    }

    /// <summary>A QoS 2 publish that could not be routed: PUBREC 0x80 in MQTT 5; MQTT 3.1.1 has none, so the connection closes.</summary>
    private void RefuseQos2(ushort packetId)
    {
        if (_v5)
        {
            Send(ReplyPackets.PubRec(packetId, MqttPubRecReasonCode.UnspecifiedError));
        }
        else
        {
            CloseByServer(CloseReason.PublishFailed);
        }
    }

    /// <summary>Counts and logs <paramref name="count"/> messages to <paramref name="topic"/> (the first, for a batch) that could not be routed.</summary>
    public void PublishFailed(Exception ex, string topic, int count)
    {
        _gateway.Metrics.CountDrop(DropReason.PublishFailed, count);
        LogPublishFailed(_logger, ex, _clientId, topic);
    }

    /// <summary>
    /// Answers a QoS 1 publish once its batch was routed to <paramref name="routed"/> sessions (-1: routing failed):
    /// it leaves the Receive Maximum count and gets its PUBACK; MQTT 3.1.1 has no failing PUBACK, so the connection closes.
    /// </summary>
    public void CompleteQos1(ushort packetId, int routed)
    {
        _inboundQos1--;
        if (routed >= 0)
        {
            Send(ReplyPackets.PubAckRouted(packetId, routed, _v5));
        }
        else if (_v5)
        {
            Send(ReplyPackets.PubAck(packetId, MqttPubAckReasonCode.UnspecifiedError));
        }
        else
        {
            CloseByServer(CloseReason.PublishFailed);
        }
    }
}
