using MQTTnet.Packets;
using MQTTnet.Protocol;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

// SUBSCRIBE and UNSUBSCRIBE: filters checked here, subscriptions kept by the session grain.
internal sealed partial class MqttConnection
{
    private static readonly KeyValuePair<string, object?> InvalidFilterTag = new(CloseReasons.TagName, "invalid_filter");

    private async Task HandleSubscribeAsync(MqttSubscribePacket subscribe)
    {
        // Current while the SUBSCRIBE is handled, so the session's grain call and the replication to the silos carry it.
        using var span = _gateway.Tracing?.StartSubscribe(_clientId, subscribe.TopicFilters);
        await SubscribeAsync(subscribe);
    }

    private async Task SubscribeAsync(MqttSubscribePacket subscribe)
    {
        if (subscribe.TopicFilters.Count == 0)
        {
            Reject(CloseReason.ProtocolError, "SUBSCRIBE without topic filters");
            return;
        }

        var codes = new MqttSubscribeReasonCode[subscribe.TopicFilters.Count];
        var accepted = new List<Subscription>(codes.Length);
        var positions = new List<int>(codes.Length);
        for (var i = 0; i < codes.Length; i++)
        {
            var filter = subscribe.TopicFilters[i];
            var topic = filter.Topic ?? string.Empty;
            var shared = SharedSubscription.IsShared(topic);
            var valid = shared ? SharedSubscription.TryParse(topic, out _, out _) : MqttTopic.IsValidTopicFilter(topic);
            if (!valid || filter.QualityOfServiceLevel > MqttQualityOfServiceLevel.ExactlyOnce)
            {
                codes[i] = _v5 ? MqttSubscribeReasonCode.TopicFilterInvalid : MqttSubscribeReasonCode.UnspecifiedError;
                _gateway.Metrics.PacketsRejected.Add(1, InvalidFilterTag);
                if (ShouldLogBadInput())
                {
                    LogRejectedFilter(_logger, _clientId, topic);
                }
                continue;
            }

            if (FilterOverLimits(topic, out codes[i]))
            {
                continue;
            }

            if (shared && filter.NoLocal)
            {
                // [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error.
                Reject(CloseReason.ProtocolError, $"No Local set on shared subscription '{topic}'");
                return;
            }

            if (!AuthorizeSubscribe(topic))
            {
                codes[i] = _v5 ? MqttSubscribeReasonCode.NotAuthorized : MqttSubscribeReasonCode.UnspecifiedError;
                continue;
            }

            accepted.Add(new Subscription(topic, (byte)filter.QualityOfServiceLevel, filter.NoLocal, filter.RetainAsPublished, (byte)filter.RetainHandling, subscribe.SubscriptionIdentifier));
            positions.Add(i);
        }

        Delivery[] retained = [];
        if (accepted.Count > 0)
        {
            // Bounded, and asked once more (subscribing again to the same filters changes nothing more); past that
            // the filters get SUBACK 0x80 (not subscribed, as far as the client knows) and the client may try again.
            var (ok, result) = await CallBoundedAsync(
                GrainCall.Subscribe,
                (_session!, Id, filters: accepted.ToArray(), Limits.MaxSubscriptionsPerClient),
                static (s, cancellationToken) => s.Item1.Subscribe(s.Id, s.filters, s.MaxSubscriptionsPerClient, cancellationToken),
                retry: true);
            for (var j = 0; j < positions.Count; j++)
            {
                codes[positions[j]] = ok ? SubscribeCode(result.GrantedQos[j]) : MqttSubscribeReasonCode.UnspecifiedError;
            }

            retained = ok ? result.Retained : [];
        }

        Send(ReplyPackets.SubAck(subscribe.PacketIdentifier, codes));
        foreach (var d in retained)
        {
            EnqueueDelivery(d);
        }
    }

    private async Task HandleUnsubscribeAsync(MqttUnsubscribePacket unsubscribe)
    {
        var codes = new MqttUnsubscribeReasonCode[unsubscribe.TopicFilters.Count];
        var valid = new List<string>(codes.Length);
        var positions = new List<int>(codes.Length);
        for (var i = 0; i < codes.Length; i++)
        {
            var filter = unsubscribe.TopicFilters[i] ?? string.Empty;
            if (!MqttTopic.IsValidTopicFilter(filter))
            {
                codes[i] = MqttUnsubscribeReasonCode.TopicFilterInvalid;
                continue;
            }

            valid.Add(filter);
            positions.Add(i);
        }

        if (valid.Count > 0)
        {
            // Bounded and asked once more, as SUBSCRIBE. Past that MQTT 5 answers 0x80 per filter; an MQTT 3.1.1
            // UNSUBACK cannot fail, so that connection closes and the client resumes and unsubscribes again.
            var (ok, existed) = await CallBoundedAsync(
                GrainCall.Unsubscribe,
                (_session!, Id, filters: valid.ToArray()),
                static (s, cancellationToken) => s.Item1.Unsubscribe(s.Id, s.filters, cancellationToken),
                retry: true);
            if (!ok && !_v5)
            {
                CloseForUnresponsiveSession();
                return;
            }

            for (var j = 0; j < positions.Count; j++)
            {
                codes[positions[j]] = !ok ? MqttUnsubscribeReasonCode.UnspecifiedError
                    : existed[j] ? MqttUnsubscribeReasonCode.Success : MqttUnsubscribeReasonCode.NoSubscriptionExisted;
            }
        }

        Send(ReplyPackets.UnsubAck(unsubscribe.PacketIdentifier, codes));
    }
}
