namespace Orleans.Mqtt.Grains;

/// <summary>One shard of the topic space: all publishes to a topic pass its shard, which keeps per-topic order.</summary>
public interface ITopicShardGrain : IGrainWithIntegerKey
{
    /// <summary>Routes a message (and updates the retained store when flagged). Returns the number of sessions it was handed to.</summary>
    Task<int> Publish(MqttMessage message);

    /// <summary>
    /// Routes messages in order, as consecutive <see cref="Publish"/> calls would, with one push per destination
    /// gateway and one call per destination session for the whole batch. Returns per message the sessions it reached.
    /// </summary>
    Task<int[]> PublishBatch(MqttMessage[] messages);

    /// <summary>Hands messages of a shared subscription whose member's session ended to another member of the group.</summary>
    Task Redispatch(string shareKey, string leavingClientId, SessionDelivery[] deliveries);
}
