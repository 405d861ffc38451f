namespace Orleans.Mqtt.Grains;

/// <summary>One shard of the topic space: all publishes to a topic pass its shard, which keeps per-topic order.</summary>
public interface ITopicShardGrain : IGrainWithIntegerKey
{
    /// <summary>
    /// Routes a message (and updates the retained store when flagged). Returns the number of sessions it was handed to.
    /// <paramref name="cancellationToken"/> is cancelled when the gateway gave up waiting (<c>Mqtt:PublishTimeout</c>):
    /// Orleans drops a call still queued; one that runs routes to the end (its publisher was told it failed and may
    /// send the message again, which QoS 0 and 1 allow).
    /// </summary>
    Task<int> Publish(MqttMessage message, CancellationToken cancellationToken = default);

    /// <summary>
    /// Routes messages in order, as consecutive <see cref="Publish"/> calls would, with one push per destination
    /// gateway and one call per destination session for the whole batch. Returns per message the sessions it reached.
    /// Cancellation as for <see cref="Publish"/>.
    /// </summary>
    Task<int[]> PublishBatch(MqttMessage[] messages, CancellationToken cancellationToken = default);

    /// <summary>
    /// Routes sharded by topic: applies a version of a client's routes with an exact filter of this shard (added,
    /// changed or removed) to the replica of the silo this activation matches on, before the SUBSCRIBE or UNSUBSCRIBE
    /// that made it is answered. The silos holding the shard in the writer's membership view get it from the writer;
    /// this reaches the activation wherever it runs, also on a silo that view no longer names. Interleaves with
    /// publishes: the change is in this silo's table once the call returns.
    /// </summary>
    [Orleans.Concurrency.AlwaysInterleave]
    Task Accept(ClientRoutes routes);

    /// <summary>Hands messages of a shared subscription whose member's session ended to another member of the group.</summary>
    Task Redispatch(string shareKey, string leavingClientId, SessionDelivery[] deliveries);
}
