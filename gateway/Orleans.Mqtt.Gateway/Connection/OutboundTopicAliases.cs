using MQTTnet.Packets;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The topic aliases this server sets up for the client (MQTT 5, up to the client's Topic Alias Maximum), used by
/// the drain only. Every topic gets an alias; when all are taken, the slot assigned longest ago is reused.
/// </summary>
internal sealed class OutboundTopicAliases(ushort maximum)
{
    private readonly Dictionary<string, ushort> _aliasByTopic = new(StringComparer.Ordinal);
    private readonly string?[] _topicByAlias = new string?[maximum + 1];
    private ushort _next = 1;

    /// <summary>
    /// Puts the alias on the packet: a topic that has one goes out as an empty topic with its alias; any other goes
    /// out with its topic and the next alias, returned so it is assigned only once the packet is written.
    /// </summary>
    public ushort Apply(MqttPublishPacket packet)
    {
        if (_aliasByTopic.TryGetValue(packet.Topic, out var alias))
        {
            packet.TopicAlias = alias;
            packet.Topic = string.Empty;
            return 0;
        }

        packet.TopicAlias = _next;
        return _next;
    }

    /// <summary>Records the alias the client now knows for <paramref name="topic"/>.</summary>
    public void Assign(string topic, ushort alias)
    {
        if (_topicByAlias[alias] is { } previous)
        {
            _aliasByTopic.Remove(previous);
        }

        _topicByAlias[alias] = topic;
        _aliasByTopic[topic] = alias;
        _next = alias == maximum ? (ushort)1 : (ushort)(alias + 1);
    }
}
