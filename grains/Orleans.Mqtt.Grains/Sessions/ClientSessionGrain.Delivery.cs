using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

// QoS 1/2 messages to the client: the queue, the in-flight window, acknowledgements and inbound QoS 2 ids.
internal sealed partial class ClientSessionGrain
{
    public async Task Deliver(SessionDelivery[] deliveries)
    {
        if (!_hasSession)
        {
            // A route that outlived its session (e.g. a replica not yet updated): nothing to deliver to.
            metrics.CountDrop(DropReason.NoSession, deliveries.Length);
            DeactivateOnIdle();
            return;
        }

        var changed = false;
        List<Activity>? spans = null;
        foreach (var d in deliveries)
        {
            var delivery = d;
            if (d.Message.TraceParent is not null && StartDeliver(d) is { } span)
            {
                // The copy carries this session's span on to the subscriber's gateway.
                (spans ??= []).Add(span);
                delivery = d with { Message = d.Message with { TraceParent = MqttTracing.TraceParentOf(span) } };
            }

            changed |= Enqueue(delivery);
        }

        try
        {
            if (changed)
            {
                // Durable before the publisher is acknowledged.
                await PumpSaveAndPushAsync();
            }
        }
        finally
        {
            if (spans is not null)
            {
                foreach (var span in spans)
                {
                    span.Stop();
                }
            }
        }
    }

    private Activity? StartDeliver(SessionDelivery d) =>
        MqttTracing.StartHop(d.Message.TraceParent, MqttTracing.Operations.Deliver, MqttTracing.OperationTypes.Process, ActivityKind.Internal,
            new MqttMessageTags(d.Message.Topic, d.Qos, ClientId, d.Message.Payload.Length));

    public Task Acknowledge(long connectionId, ushort packetId, OutboundAck ack) =>
        AcknowledgeBatch(connectionId, [new OutboundAcknowledgement(packetId, ack)]);

    public async Task AcknowledgeBatch(long connectionId, OutboundAcknowledgement[] acks, CancellationToken cancellationToken = default)
    {
        if (_presence?.ConnectionId != connectionId)
        {
            return;
        }

        var changed = false;
        foreach (var (packetId, ack) in acks)
        {
            changed |= Window.Acknowledge(packetId, ack);
        }

        if (!changed)
        {
            return;
        }

        await PumpSaveAndPushAsync();
    }

    public Task<bool> IsInboundQos2Pending(ushort packetId, CancellationToken cancellationToken = default) => Task.FromResult(S.InboundQos2.Contains(packetId));

    public Task AddInboundQos2(long connectionId, ushort packetId, CancellationToken cancellationToken = default)
    {
        if (S.InboundQos2.Contains(packetId))
        {
            return Task.CompletedTask;
        }

        S.InboundQos2.Add(packetId);
        return SaveAsync();
    }

    public Task ReleaseInboundQos2(long connectionId, ushort packetId, CancellationToken cancellationToken = default) =>
        S.InboundQos2.Remove(packetId) ? SaveAsync() : Task.CompletedTask;

    private OutboundWindow Window => new(S);

    private bool Enqueue(SessionDelivery delivery)
    {
        if (Window.TryEnqueue(delivery, options.Value.MaxQueuedMessages))
        {
            return true;
        }

        // Policy at the limit: drop the newest message for this session only; counted, logged, kept per session.
        S.DroppedMessages++;
        metrics.CountDrop(DropReason.QueueFull);
        if (S.DroppedMessages == 1 || S.DroppedMessages % 1000 == 0)
        {
            LogQueueFull(logger, ClientId, options.Value.MaxQueuedMessages, S.DroppedMessages);
        }

        return false;
    }

    private void Pump(List<Delivery> outgoing)
    {
        if (_presence is null || S.Queue.Count == 0)
        {
            return;
        }

        var sent = S.Inflight.Count;
        var expired = Window.Fill(Math.Min(options.Value.MaxInflightMessages, (int)S.ReceiveMaximum), UtcNow);
        if (expired > 0)
        {
            metrics.CountDrop(DropReason.Expired, expired);
        }

        for (; sent < S.Inflight.Count; sent++)
        {
            outgoing.Add(ToDelivery(S.Inflight[sent], dup: false));
        }
    }

    // Moves what the window has room for into flight, stores the session, then hands the new messages to the gateway.
    private async Task PumpSaveAndPushAsync()
    {
        var outgoing = new List<Delivery>();
        Pump(outgoing);
        await SaveAsync();
        await PushAsync(outgoing);
    }

    private Delivery ToDelivery(InflightMessage m, bool dup) =>
        new(_presence!.ConnectionId, m.Delivery.Message, m.Delivery.Qos, m.Delivery.Retain, m.PacketId, dup, m.Delivery.SubscriptionIds);

    // Handed to the silo's outbox, not awaited: the messages are in flight in this session's state already; the outbox
    // sends a failed push again while the gateway lives, and what it gives up on goes out again (with DUP) when the
    // client resumes.
    private Task PushAsync(List<Delivery> outgoing)
    {
        if (outgoing.Count > 0 && _presence is { } presence)
        {
            outbox.Send(presence, outgoing);
        }

        return Task.CompletedTask;
    }

    /// <summary>
    /// Messages that came through a shared subscription and were not yet (fully) delivered go to another member of
    /// their group when this session ends. Not awaited, for the same reason as the will.
    /// </summary>
    private void RedispatchShared()
    {
        Dictionary<(string ShareKey, int Shard), List<SessionDelivery>>? groups = null;
        var shards = options.Value.TopicShards;
        foreach (var d in S.Queue)
        {
            Collect(d);
        }

        foreach (var m in S.Inflight)
        {
            // A QoS 2 message whose delivery has started never goes to another client [MQTT-4.8.2-5]; a QoS 1 one
            // does, as section 4.8.2 recommends.
            if (m.Delivery.Qos == 1)
            {
                Collect(m.Delivery);
            }
        }

        if (groups is null)
        {
            return;
        }

        foreach (var ((shareKey, shard), deliveries) in groups)
        {
            GrainFactory.GetGrain<ITopicShardGrain>(shard).Redispatch(shareKey, ClientId, [.. deliveries]).ContinueWith(
                t => LogRedispatchFailed(logger, t.Exception!, ClientId, shareKey),
                CancellationToken.None,
                TaskContinuationOptions.OnlyOnFaulted,
                TaskScheduler.Current);
        }

        void Collect(SessionDelivery d)
        {
            if (d.ShareKey is null)
            {
                return;
            }

            groups ??= [];
            var key = (d.ShareKey, Topics.MqttTopic.ShardOf(d.Message.Topic, shards));
            if (!groups.TryGetValue(key, out var list))
            {
                groups[key] = list = [];
            }

            list.Add(d);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Moving the shared-subscription messages of client {ClientId} ({ShareKey}) to other members failed")]
    private static partial void LogRedispatchFailed(ILogger logger, Exception ex, string clientId, string shareKey);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Queue of client {ClientId} is full ({Limit} messages): newest message dropped, {Dropped} dropped so far")]
    private static partial void LogQueueFull(ILogger logger, string clientId, int limit, long dropped);
}
