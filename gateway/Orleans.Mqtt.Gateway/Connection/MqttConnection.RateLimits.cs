using MQTTnet.Packets;
using MQTTnet.Protocol;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

// Mqtt:Limits and Mqtt:Overload on one connection: its listener's connection rate and the overload state at CONNECT,
// its publish rate, topic length and levels, and its number of subscriptions.
internal sealed partial class MqttConnection
{
    private static readonly KeyValuePair<string, object?> RateLimitedTag = new(CloseReasons.TagName, DropReason.RateLimited.Tag());
    private static readonly KeyValuePair<string, object?> QuotaExceededTag = new(CloseReasons.TagName, "quota_exceeded");

    // The longest a paced MQTT 3.1.1 read loop sleeps before it looks whether the connection is closing.
    private static readonly TimeSpan MaxPause = TimeSpan.FromSeconds(1);

    // Set when the connection was accepted over its listener's Mqtt:Limits:ConnectionsPerSecond.
    private bool _overConnectionRate;

    // Made at CONNECT when Mqtt:Limits:MessagesPerSecond or BytesPerSecond is set; used by the read loop only.
    private PublishRateLimit? _publishRate;

    private LimitsOptions Limits => _gateway.Limits.Options;

    /// <summary>
    /// Takes a token of <paramref name="listener"/>'s connection rate for this connection, when it is accepted and
    /// before anything is read. Over the rate, the CONNECT is answered with a refusal and nothing else is done.
    /// </summary>
    public void AcceptOn(MqttListener listener) => _overConnectionRate = !_gateway.Limits.Connections.TryAccept(listener);

    /// <summary>
    /// The limits a CONNECT meets before its credentials are checked or a grain is called: the listener's connection
    /// rate, the overload state and the will topic's length and levels. Returns true when the CONNECT was refused.
    /// </summary>
    private bool RefusedByLimits(MqttConnectPacket connect)
    {
        if (_overConnectionRate)
        {
            RefuseConnect(CloseReason.ConnectionRateExceeded, $"over Mqtt:Limits:ConnectionsPerSecond {Limits.ConnectionsPerSecond} on this listener");
            return true;
        }

        if (_gateway.Limits.Overload.IsOverloaded)
        {
            RefuseConnect(CloseReason.ServerBusy, _gateway.Limits.Overload.Cause);
            return true;
        }

        if (connect.WillFlag && TopicOverLimits(connect.WillTopic ?? string.Empty) is { } reason)
        {
            RefuseConnect(reason, $"will topic of {connect.WillTopic!.Length} characters: {reason.LogText()}");
            return true;
        }

        _publishRate = PublishRateLimit.Create(Limits, _gateway.TimeProvider);
        return false;
    }

    /// <summary>
    /// The limits an inbound PUBLISH meets once it is known to be valid: topic length and levels, the overload state
    /// (QoS 0 is shed first) and the client's rates. Returns true when the message may be routed; otherwise it was
    /// answered here: QoS 0 dropped and counted; QoS 1/2 refused with 0x97 (MQTT 5), or, in MQTT 3.1.1, which has no
    /// failing acknowledgement, the read loop pauses until the rate allows it and then it goes on.
    /// </summary>
    private ValueTask<bool> AdmitPublishAsync(byte qos, ushort packetId, string topic, int payloadBytes)
    {
        if (TopicOverLimits(topic) is { } topicReason)
        {
            RefuseTopic(topicReason, qos, packetId, topic);
            return ValueTask.FromResult(false);
        }

        var rate = _publishRate;
        var resend = qos == 2 && _inboundQos2 is { } pending && pending.Contains(packetId);
        var now = rate is null ? 0 : _gateway.TimeProvider.GetTimestamp();
        switch (PublishAdmission.Decide(qos, _v5, _gateway.Limits.Overload.IsOverloaded, resend, rate, now, payloadBytes))
        {
            case PublishVerdict.Route:
                return ValueTask.FromResult(true);
            case PublishVerdict.DropOverloaded:
                _gateway.Metrics.CountDrop(DropReason.Overloaded);
                return ValueTask.FromResult(false);
            case PublishVerdict.DropRateLimited:
                _gateway.Metrics.CountDrop(DropReason.RateLimited);
                return ValueTask.FromResult(false);
            case PublishVerdict.RefuseQuotaExceeded:
                _gateway.Metrics.PublishesRefused.Add(1, RateLimitedTag);
                Send(qos == 1
                    ? ReplyPackets.PubAck(packetId, MqttPubAckReasonCode.QuotaExceeded)
                    : ReplyPackets.PubRec(packetId, MqttPubRecReasonCode.QuotaExceeded));
                return ValueTask.FromResult(false);
        }

        return new ValueTask<bool>(PaceAsync(rate!, payloadBytes));
    }

    /// <summary>
    /// MQTT 3.1.1 QoS 1/2 over the rate: stops reading until the rate allows the packet (TCP then holds the client
    /// back), after routing what was read before it. False when the connection closed meanwhile.
    /// </summary>
    private async Task<bool> PaceAsync(PublishRateLimit rate, int payloadBytes)
    {
        _gateway.Metrics.PublishesDelayed.Add(1, RateLimitedTag);
        await FlushBatchesAsync();
        var time = _gateway.TimeProvider;
        while (!_closing)
        {
            // The wait is the server's doing: it does not count against the client's keep alive.
            var now = time.GetTimestamp();
            Volatile.Write(ref _lastActivity, now);
            if (rate.TryAcquire(now, payloadBytes))
            {
                return true;
            }

            var wait = rate.TimeUntilAllowed(now, payloadBytes);
            await Task.Delay(wait < MaxPause ? wait : MaxPause, time);
        }

        return false;
    }

    /// <summary>A topic name or filter over <c>Mqtt:Limits:MaxTopicLength</c> or <c>MaxTopicLevels</c>: the reason, else null.</summary>
    private CloseReason? TopicOverLimits(string topic)
    {
        var limits = Limits;
        if (topic.Length > limits.MaxTopicLength)
        {
            return CloseReason.TopicTooLong;
        }

        // Levels are separators + 1, so a topic shorter than the limit cannot have too many.
        if (limits.MaxTopicLevels > 0 && topic.Length >= limits.MaxTopicLevels && topic.AsSpan().Count('/') + 1 > limits.MaxTopicLevels)
        {
            return CloseReason.TopicTooManyLevels;
        }

        return null;
    }

    /// <summary>
    /// A PUBLISH topic over the limits: MQTT 5 QoS 1/2 gets PUBACK/PUBREC 0x90 (Topic Name invalid: well formed, not
    /// accepted by this server); QoS 0 and MQTT 3.1.1, which cannot be told otherwise, close the connection.
    /// </summary>
    private void RefuseTopic(CloseReason reason, byte qos, ushort packetId, string topic)
    {
        var detail = $"PUBLISH to a topic of {topic.Length} characters: {reason.LogText()}";
        if (!_v5 || qos == 0)
        {
            Reject(reason, detail);
            return;
        }

        CountRejected(reason, detail);
        _gateway.Metrics.PublishesRefused.Add(1, reason.MetricTag());
        Send(qos == 1
            ? ReplyPackets.PubAck(packetId, MqttPubAckReasonCode.TopicNameInvalid)
            : ReplyPackets.PubRec(packetId, MqttPubRecReasonCode.TopicNameInvalid));
    }

    /// <summary>
    /// A SUBSCRIBE filter over the topic limits gets SUBACK 0x8F Topic Filter invalid (MQTT 5) / 0x80 (3.1.1) in
    /// <paramref name="code"/>, and is counted; a shared subscription is measured on its filter. False when within them.
    /// </summary>
    private bool FilterOverLimits(string filter, out MqttSubscribeReasonCode code)
    {
        var measured = SharedSubscription.IsShared(filter) && SharedSubscription.TryParse(filter, out _, out var inner) ? inner : filter;
        if (TopicOverLimits(measured) is not { } reason)
        {
            code = default;
            return false;
        }

        code = _v5 ? MqttSubscribeReasonCode.TopicFilterInvalid : MqttSubscribeReasonCode.UnspecifiedError;
        _gateway.Metrics.SubscriptionsRefused.Add(1, reason.MetricTag());
        if (ShouldLogBadInput())
        {
            LogRejected(_logger, _clientId, Remote, reason.Tag(), $"topic filter of {filter.Length} characters refused: {reason.LogText()}");
        }

        return true;
    }

    /// <summary>
    /// The SUBACK code of a filter the session answered: its granted QoS, or, over
    /// <c>Mqtt:Limits:MaxSubscriptionsPerClient</c>, 0x97 Quota exceeded (MQTT 5) / 0x80 (3.1.1), counted.
    /// </summary>
    private MqttSubscribeReasonCode SubscribeCode(byte granted)
    {
        if (granted != SubscribeReasonCodes.QuotaExceeded)
        {
            return (MqttSubscribeReasonCode)granted;
        }

        _gateway.Metrics.SubscriptionsRefused.Add(1, QuotaExceededTag);
        if (ShouldLogBadInput())
        {
            LogRejected(_logger, _clientId, Remote, "quota_exceeded", $"subscription refused: the session holds Mqtt:Limits:MaxSubscriptionsPerClient {Limits.MaxSubscriptionsPerClient}");
        }

        return _v5 ? MqttSubscribeReasonCode.QuotaExceeded : MqttSubscribeReasonCode.UnspecifiedError;
    }
}
