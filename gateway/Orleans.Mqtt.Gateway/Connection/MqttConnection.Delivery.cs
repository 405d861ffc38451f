using System.Diagnostics;
using System.IO.Pipelines;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

// Outbound: packets silos push, queued in order behind CONNACK and written by the drain (see ConnectionWriter).
internal sealed partial class MqttConnection
{
    /// <summary>Queues a packet pushed by a silo; before CONNACK it waits so CONNACK is always first.</summary>
    public void EnqueueDelivery(Delivery delivery)
    {
        lock (_gate)
        {
            if (!_open)
            {
                (_pendingBeforeConnAck ??= []).Add(delivery);
                return;
            }

            if (delivery.Qos > 0)
            {
                // Bounded by the session's in-flight window, and never dropped here.
                _writer.Enqueue(new Outgoing(null, delivery));
                return;
            }

            if (_writer.PendingDeliveries >= _gateway.Options.MaxPendingWrites
                || !_writer.TryEnqueue(new Outgoing(null, delivery), _gateway.Options.MaxPendingWriteBytes))
            {
                _gateway.Metrics.CountDrop(DropReason.SlowConsumer);
                LogDrop(delivery, DropReason.SlowConsumer);
            }
        }
    }

    /// <summary>
    /// Writes a packet a silo pushed. A message that expired on its way, or whose PUBLISH is larger than the client's
    /// Maximum Packet Size, is not written [MQTT-3.3.2-5], [MQTT-3.1.2-25]: it is counted and, for QoS 1/2, acknowledged
    /// to the session as if the client had, so it leaves the in-flight window.
    /// </summary>
    public void WriteDelivery(PipeWriter output, Delivery d)
    {
        if (d.Kind == DeliveryKind.PubRel)
        {
            _writer.Write(output, ReplyPackets.PubRel(d.PacketId));
            return;
        }

        if (!MayDeliver(d))
        {
            DropDelivery(d, DropReason.NotAuthorized);
            return;
        }

        var now = UtcNow;
        if (d.Message.IsExpired(now))
        {
            DropDelivery(d, DropReason.Expired);
            return;
        }

        var publish = MessageMapping.ToPublish(d, _v5, now);
        var tracing = _gateway.Tracing;
        using var send = tracing is null || d.Message.TraceParent is null ? null : GatewayTracing.StartSend(d, _clientId);
        if (tracing is not null && _v5)
        {
            tracing.ApplyPropagation(publish, d, send);
        }

        var newAlias = _outboundAliases?.Apply(publish) ?? 0;
        var formatter = Formatter;
        var buffer = formatter.Encode(publish);
        try
        {
            if (_clientMaxPacketSize > 0 && (uint)buffer.Length > _clientMaxPacketSize)
            {
                send?.SetStatus(ActivityStatusCode.Error, "packet too large for the client");
                DropDelivery(d, DropReason.PacketTooLargeForClient);
                return;
            }

            _writer.Write(output, buffer);
        }
        finally
        {
            formatter.Cleanup();
        }

        if (send is not null && d.Qos > 0)
        {
            RememberTracedSend(d.PacketId, send, d.Message.Topic);
        }

        if (newAlias != 0)
        {
            _outboundAliases!.Assign(d.Message.Topic, newAlias);
        }

        _gateway.Metrics.MessagesSent.Add(1, QosTags[d.Qos]);
    }

    private void DropDelivery(Delivery d, DropReason reason)
    {
        _gateway.Metrics.CountDrop(reason);
        LogDrop(d, reason);
        if (d.Qos > 0 && _session is { } session)
        {
            // Not awaited: the writer does not wait for grains. A lost acknowledgement only means the session sends
            // the message again on the next connection, where it is dropped again.
            _ = AcknowledgeDroppedAsync(session, d.PacketId, d.Qos == 1 ? OutboundAck.PubAck : OutboundAck.PubComp);
        }
    }

    private async Task AcknowledgeDroppedAsync(IClientSessionGrain session, ushort packetId, OutboundAck ack)
    {
        try
        {
            await session.Acknowledge(Id, packetId, ack);
        }
        catch (Exception ex)
        {
            LogSessionCallFailed(_logger, ex, _clientId ?? "?");
        }
    }
}
