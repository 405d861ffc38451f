namespace Orleans.Mqtt.Grains;

/// <summary>
/// A gateway's delivery endpoint. Silos push packets for the gateway's connections through it;
/// a gateway registers one observer for all of its connections.
/// </summary>
public interface IGatewayObserver : IGrainObserver
{
    /// <summary>Writes the packets to their connections, in order. Packets for unknown connections are dropped and counted.</summary>
    [ResponseTimeout("00:00:05")]
    Task Deliver(Delivery[] deliveries);

    /// <summary>Closes a connection because another connection took over its client id (MQTT 5: DISCONNECT with the reason code first).</summary>
    [ResponseTimeout("00:00:05")]
    Task Disconnect(long connectionId, byte reasonCode);
}

/// <summary>The MQTT session of one client id: subscriptions, will, offline queue, in-flight messages, owner connection.</summary>
public interface IClientSessionGrain : IGrainWithStringKey
{
    /// <summary>Takes ownership of the session for a new connection; any older connection is disconnected with 0x8E.</summary>
    Task<ConnectResult> Connect(ConnectRequest request);

    /// <summary>
    /// The connection ended. Returns the will message the caller must publish now, if any (a will with a delay is
    /// kept by the session and published by it). <paramref name="sessionExpiryInterval"/> is the MQTT 5 DISCONNECT's
    /// new Session Expiry Interval, when it carried one.
    /// </summary>
    Task<MqttMessage?> Disconnect(long connectionId, DisconnectKind kind, uint? sessionExpiryInterval = null);

    /// <summary>Adds or replaces subscriptions; returns once they are routable on every live silo.</summary>
    Task<SubscribeResult> Subscribe(long connectionId, Subscription[] subscriptions);

    /// <summary>Removes subscriptions; returns per filter whether it existed.</summary>
    Task<bool[]> Unsubscribe(long connectionId, string[] filters);

    /// <summary>Queues QoS 1/2 messages for this session and sends what the in-flight window allows.</summary>
    Task Deliver(SessionDelivery[] deliveries);

    /// <summary>An acknowledgement for an outbound message from the client.</summary>
    Task Acknowledge(long connectionId, ushort packetId, OutboundAck ack);

    /// <summary>Acknowledgements for outbound messages, in the order the client sent them; one save and one push for all.</summary>
    Task AcknowledgeBatch(long connectionId, OutboundAcknowledgement[] acks);

    /// <summary>For the sweeper: publishes a delayed will that is due and ends the session if it has expired.</summary>
    Task ExpireIfDue();

    /// <summary>Whether an inbound QoS 2 packet id is already received and not yet released (a duplicate must not be routed again).</summary>
    Task<bool> IsInboundQos2Pending(ushort packetId);

    /// <summary>Records an inbound QoS 2 packet id as received (after its message was routed).</summary>
    Task AddInboundQos2(long connectionId, ushort packetId);

    /// <summary>PUBREL: forgets an inbound QoS 2 packet id.</summary>
    Task ReleaseInboundQos2(long connectionId, ushort packetId);
}

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

/// <summary>The route and retained replica of one silo (the grain is pinned to the silo named by its key).</summary>
public interface IRouteReplicaGrain : IGrainWithStringKey
{
    /// <summary>Applies a client's routes if newer than what the replica holds; durable when the call returns.</summary>
    [ResponseTimeout("00:00:05")]
    Task Apply(ClientRoutes routes);

    /// <summary>Applies a retained message change if newer than what the replica holds; durable when the call returns.</summary>
    [ResponseTimeout("00:00:05")]
    Task ApplyRetained(RetainedUpdate update);

    /// <summary>Counts from this silo's replica (which holds the whole cluster's routes).</summary>
    Task<ReplicaStats> GetStats();

    /// <summary>
    /// For a silo that just became active: returns once this silo sees membership at <paramref name="membershipVersion"/>
    /// or later (so every change it sends from now on includes the new silo) and every change it started sending
    /// before that has completed. After this barrier on every peer, a copy from any caught-up peer is complete.
    /// </summary>
    Task Barrier(long membershipVersion);

    /// <summary>Whether this silo's replica is complete (loaded and caught up), so a peer may copy from it.</summary>
    Task<bool> IsReady();

    /// <summary>The replica's digest: one hash sum per bucket (see the route table), for repair by comparison.</summary>
    Task<long[]> Digest();

    /// <summary>What the replica holds in the given digest buckets, deletions included.</summary>
    Task<ReplicaChunk> Read(int[] buckets);
}

/// <summary>
/// The registry of live gateways. Each gateway reports in periodically; a gateway not heard from within the
/// configured timeout is dead, and the sessions connected through it become offline.
/// </summary>
public interface IGatewayDirectoryGrain : IGrainWithIntegerKey
{
    /// <summary>A gateway is alive. False when it was already declared dead: it must close its connections first.</summary>
    Task<bool> Heartbeat(string gatewayId);

    /// <summary>A gateway that drained and stopped: not dead, just gone.</summary>
    Task Leave(string gatewayId);

    /// <summary>Of the given gateway ids, those that are dead (not heard from within the timeout).</summary>
    Task<string[]> FindDead(string[] gatewayIds);
}
