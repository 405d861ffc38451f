using System.Diagnostics;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The inbound batches of one connection: QoS 0/1 publishes and outbound acknowledgements read from one network read
/// go out as one grain call per topic shard and one per session, so a client that pipelines costs a call per batch,
/// not per packet. Used by the read loop only, which flushes at the end of every read and before any packet that must
/// see the effects of the ones before it.
/// </summary>
internal sealed class PublishBatcher(MqttConnection connection)
{
    /// <summary>Publishes or acknowledgements that make a batch go out before the read ends.</summary>
    public const int MaxBatch = 64;

    private readonly List<(MqttMessage Message, ushort PacketId, Activity? Span)> _publishes = [];
    private readonly List<OutboundAcknowledgement> _acknowledgements = [];

    /// <summary>Adds a QoS 0/1 publish (with its span when traced, ended once routed); a full batch is routed now.</summary>
    public async Task AddPublishAsync(MqttMessage message, ushort packetId, Activity? span = null)
    {
        _publishes.Add((message, packetId, span));
        if (_publishes.Count >= MaxBatch)
        {
            await FlushPublishesAsync();
        }
    }

    /// <summary>Adds the client's acknowledgement of an outbound message; a full batch goes out now.</summary>
    public async Task AddAcknowledgementAsync(ushort packetId, OutboundAck ack)
    {
        _acknowledgements.Add(new OutboundAcknowledgement(packetId, ack));
        if (_acknowledgements.Count >= MaxBatch)
        {
            await FlushAsync();
        }
    }

    /// <summary>Routes the batched publishes, then hands the batched acknowledgements to the session.</summary>
    public async Task FlushAsync()
    {
        await FlushPublishesAsync();
        if (_acknowledgements.Count > 0 && connection.Session is { } session)
        {
            OutboundAcknowledgement[] acks = [.. _acknowledgements];
            _acknowledgements.Clear();
            // Bounded as routing is: a session caught in a killed silo fails this connection (the client resumes and
            // the unacknowledged messages come again) instead of holding its reads for Orleans' response timeout.
            await connection.Gateway.BoundCall(session.AcknowledgeBatch(connection.Id, acks), connection.Gateway.Options.PublishTimeout);
        }
    }

    /// <summary>
    /// Routes the batched publishes, one call per shard (per-topic order holds: a topic has one shard, and a shard gets
    /// its messages in read order), then acknowledges the QoS 1 ones in the order they arrived.
    /// </summary>
    private async Task FlushPublishesAsync()
    {
        var count = _publishes.Count;
        if (count == 0)
        {
            return;
        }

        var routed = new int[count];
        if (count == 1)
        {
            routed[0] = await connection.PublishAsync(_publishes[0].Message);
        }
        else
        {
            var shards = connection.Gateway.TopicShards;
            var byShard = new Dictionary<int, List<int>>();
            for (var i = 0; i < count; i++)
            {
                var shard = MqttTopic.ShardOf(_publishes[i].Message.Topic, shards);
                if (!byShard.TryGetValue(shard, out var indexes))
                {
                    byShard[shard] = indexes = [];
                }

                indexes.Add(i);
            }

            var calls = new List<Task>(byShard.Count);
            foreach (var (shard, indexes) in byShard)
            {
                calls.Add(PublishToShardAsync(shard, indexes, routed));
            }

            await Task.WhenAll(calls);
        }

        for (var i = 0; i < count; i++)
        {
            var (message, packetId, span) = _publishes[i];
            if (message.Qos == 1)
            {
                connection.CompleteQos1(packetId, routed[i]);
            }

            GatewayTracing.EndPublish(span, routed[i]);
        }

        _publishes.Clear();
    }

    private async Task PublishToShardAsync(int shard, List<int> indexes, int[] routed)
    {
        var messages = new MqttMessage[indexes.Count];
        for (var i = 0; i < messages.Length; i++)
        {
            messages[i] = _publishes[indexes[i]].Message;
        }

        try
        {
            var counts = await connection.Gateway.BoundCall(connection.Gateway.Shard(shard).PublishBatch(messages), connection.Gateway.Options.PublishTimeout);
            for (var i = 0; i < indexes.Count; i++)
            {
                routed[indexes[i]] = counts[i];
            }
        }
        catch (Exception ex)
        {
            connection.PublishFailed(ex, messages[0].Topic, messages.Length);
            foreach (var i in indexes)
            {
                routed[i] = -1;
            }
        }
    }
}
