using System.Diagnostics.Metrics;

namespace Orleans.Mqtt.Telemetry;

/// <summary>
/// The broker's instruments, all on one <see cref="Meter"/> named <see cref="MeterName"/>.
/// Gateways and silos share the instance when co-hosted.
/// </summary>
public sealed class MqttMetrics
{
    /// <summary>The name of the meter every instrument of the broker is created on.</summary>
    public const string MeterName = "Orleans.Mqtt";

    private readonly Meter _meter;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>.</summary>
    public MqttMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        Meter = _meter;
        ConnectionsActive = _meter.CreateUpDownCounter<long>("mqtt.connections.active", description: "Open MQTT connections (after CONNACK).");
        ConnectionsAccepted = _meter.CreateCounter<long>("mqtt.connections.accepted", description: "CONNECTs accepted.");
        ConnectionsRefused = _meter.CreateCounter<long>("mqtt.connections.refused", description: "Connections refused, by reason.");
        AcceptFailures = _meter.CreateCounter<long>("mqtt.connections.accept_failures", description: "Accepts of the MQTT listeners that failed, by error (too_many_open_files: the process or the system is out of file descriptors; no_buffer_space; reset: the client gave up while it waited; other). The listener pauses after a failure that is not a reset, from 10 ms doubling to 1 s while they go on, and the clients wait in the kernel's backlog meanwhile.");
        ConnectionsClosed = _meter.CreateCounter<long>("mqtt.connections.closed", description: "Connections closed, by reason.");
        ConnectsAbandoned = _meter.CreateCounter<long>("mqtt.connections.abandoned", description: "CONNECTs refused because their session's Connect call timed out (Mqtt:SessionConnectTimeout) or failed, whose session was then told the connection is gone once the call ended.");
        GrainCallsUnanswered = _meter.CreateCounter<long>("mqtt.grain_calls.unanswered", description: "Grain calls a gateway connection waited on (routing a publish, its session's QoS 2 packet ids, acknowledgements, SUBSCRIBE, UNSUBSCRIBE, the end of the connection) that failed or got no answer within Mqtt:PublishTimeout, by call and outcome (retried: sent once more; failed: given up, the client is answered as the flow says).");
        TlsHandshakesRefused = _meter.CreateCounter<long>("mqtt.tls.handshakes_refused", description: "TLS handshakes refused for their client certificate, by reason (untrusted, expired, revoked, revocation_unknown, no_certificate).");
        PacketsRejected = _meter.CreateCounter<long>("mqtt.packets.rejected", description: "Packets rejected as bad input, by reason.");
        MessagesReceived = _meter.CreateCounter<long>("mqtt.messages.received", description: "PUBLISH packets accepted from clients.");
        MessagesSent = _meter.CreateCounter<long>("mqtt.messages.sent", description: "PUBLISH packets written to clients.");
        MessagesDropped = _meter.CreateCounter<long>("mqtt.messages.dropped", description: "Messages not delivered, by reason.");
        BytesReceived = _meter.CreateCounter<long>("mqtt.bytes.received", unit: "By", description: "Bytes of MQTT packets received.");
        BytesSent = _meter.CreateCounter<long>("mqtt.bytes.sent", unit: "By", description: "Bytes of MQTT packets sent.");
        ReplicaApplyFailures = _meter.CreateCounter<long>("mqtt.replica.apply_failures", description: "Replica changes a live silo did not take within the retry window (left to the digest repair).");
        ReplicaRepairs = _meter.CreateCounter<long>("mqtt.replica.repaired", description: "Replica entries changed by catch-up or digest repair, by kind.");
        ReplicaWrites = _meter.CreateCounter<long>("mqtt.replica.writes", description: "Route replica writes of sessions' routes sent, one per silo written (this one included), by kind (all: every active silo; presence: a presence-only change sent only to the silos that hold the client's presence).");
        ShardHandoffs = _meter.CreateCounter<long>("mqtt.routes.shard_handoffs", description: "Topic shard activations that found another silo is now their shard's first route holder, and left for it.");
        ShardAccepts = _meter.CreateCounter<long>("mqtt.routes.shard_accepts", description: "Changes of exact filters also sent to their topic shard's grain before the answer (one per shard), since no first holder written reported the shard's activation on it (a shard not active yet, or one activation that runs on a silo the writer's view does not name first).");
        GatewaysLost = _meter.CreateCounter<long>("mqtt.gateways.lost", description: "Gateways declared dead (not heard from within the timeout).");
        SessionsOwnerLost = _meter.CreateCounter<long>("mqtt.sessions.owner_lost", description: "Sessions set offline because their gateway died.");
        SessionsStaleCopiesDropped = _meter.CreateCounter<long>("mqtt.sessions.stale_copies_dropped", description: "Stored session copies found older than their routes and dropped, by where (start: the silo's check at its start; activation: an activation that found one; not_holder: a copy on a silo no longer among its session's holders, dropped once the holders have it).");
        SessionsLost = _meter.CreateCounter<long>("mqtt.sessions.lost", description: "Persistent sessions whose state no surviving silo held (every copy lost with its silo): started afresh, their clients told Session Present 0.");
        SessionsFailedOver = _meter.CreateCounter<long>("mqtt.sessions.failed_over", description: "Persistent sessions activated from a copy on another silo after their home silo was lost.");
        SessionReplicaWriteFailures = _meter.CreateCounter<long>("mqtt.sessions.replica_write_failures", description: "Writes of a session's state to a replica silo that failed while the silo was still active (the save that needed it fails too).");
        SessionsRereplicated = _meter.CreateCounter<long>("mqtt.sessions.rereplicated", description: "Session copies written to a silo that had become one of the session's holders and lacked them, after a membership change, by kind (home: by the session's home; orphan: by a surviving holder of a session whose home is not active).");
        SessionRereplicationFailures = _meter.CreateCounter<long>("mqtt.sessions.rereplication_failures", description: "Re-replication calls to a silo that failed (the pass tries again later), by reason (versions: asking what it holds; store: writing the copies), counted per session.");
        HeapTrims = _meter.CreateCounter<long>("mqtt.heap.trims", description: "Background full collections started by the heap trimmer: once the heap grew and stopped growing, or after a while without one (Mqtt:HeapTrimInterval).");
        PendingWriteBytes = _meter.CreateUpDownCounter<long>("mqtt.connections.pending_write_bytes", description: "Payload and topic bytes of deliveries queued to this gateway's connections and not yet written (bounded per connection by Mqtt:MaxPendingWriteBytes).");
        PublishesRefused = _meter.CreateCounter<long>("mqtt.publishes.refused", description: "QoS 1/2 PUBLISH packets answered with a failing PUBACK/PUBREC because of a limit (MQTT 5: 0x97 over the rate, 0x90 topic over Mqtt:Limits), by reason.");
        PublishesDelayed = _meter.CreateCounter<long>("mqtt.publishes.delayed", description: "MQTT 3.1.1 QoS 1/2 PUBLISH packets over their client's rate whose reading was paused until the rate allowed them, by reason.");
        SubscriptionsRefused = _meter.CreateCounter<long>("mqtt.subscriptions.refused", description: "SUBSCRIBE topic filters refused by a limit (SUBACK 0x97/0x8F in MQTT 5, 0x80 in 3.1.1), by reason.");
        SessionsInMemory = _meter.CreateUpDownCounter<long>("mqtt.sessions.in_memory", description: "Session grains activated in this silo; persistent sessions leave memory when idle (Mqtt:SessionIdleTimeout).");
        AclDenied = _meter.CreateCounter<long>("mqtt.acl.denied", description: "Requests the ACL refused, by action (publish, subscribe, will); deliveries withheld count as mqtt.messages.dropped with reason not_authorized.");
        AdminRefused = _meter.CreateCounter<long>("mqtt.admin.refused", description: "Admin API calls refused, by reason (missing_key, bad_key, not_loopback).");
        AdminActions = _meter.CreateCounter<long>("mqtt.admin.actions", description: "Changes made through the admin API, by action (kick, subscribe, unsubscribe, publish, retained_delete).");
        TraceContextsInvalid = _meter.CreateCounter<long>("mqtt.tracing.invalid_traceparent", description: "MQTT 5 PUBLISH packets whose traceparent user property is not a W3C trace context (ignored: the message is routed and traced as one without it).");
        AclReloads = _meter.CreateCounter<long>("mqtt.acl.reloads", description: "Reads of a changed ACL file (Mqtt:AclFile), by outcome (ok; error: the rules in force stay).");
    }

    /// <summary>Admin API calls refused; tag <c>reason</c>.</summary>
    public Counter<long> AdminRefused { get; }

    /// <summary>Changes made through the admin API; tag <c>action</c>.</summary>
    public Counter<long> AdminActions { get; }

    /// <summary>Open MQTT connections.</summary>
    public UpDownCounter<long> ConnectionsActive { get; }

    /// <summary>CONNECTs accepted.</summary>
    public Counter<long> ConnectionsAccepted { get; }

    /// <summary>Connections refused; tag <c>reason</c>.</summary>
    public Counter<long> ConnectionsRefused { get; }

    /// <summary>Accepts of the MQTT listeners that failed; tag <c>error</c>.</summary>
    public Counter<long> AcceptFailures { get; }

    /// <summary>CONNECTs refused because their session's <c>Connect</c> call timed out or failed, whose session was then told the connection is gone.</summary>
    public Counter<long> ConnectsAbandoned { get; }

    /// <summary>Grain calls of a connection that failed or went unanswered within <c>Mqtt:PublishTimeout</c>; tags <c>call</c> and <c>outcome</c>.</summary>
    public Counter<long> GrainCallsUnanswered { get; }

    /// <summary>Connections closed; tag <c>reason</c>.</summary>
    public Counter<long> ConnectionsClosed { get; }

    /// <summary>TLS handshakes refused for the client certificate; tag <c>reason</c>.</summary>
    public Counter<long> TlsHandshakesRefused { get; }

    /// <summary>Bad input rejected; tag <c>reason</c>.</summary>
    public Counter<long> PacketsRejected { get; }

    /// <summary>PUBLISH packets accepted from clients; tag <c>qos</c>.</summary>
    public Counter<long> MessagesReceived { get; }

    /// <summary>PUBLISH packets written to clients; tag <c>qos</c>.</summary>
    public Counter<long> MessagesSent { get; }

    /// <summary>Messages not delivered; tag <c>reason</c>.</summary>
    public Counter<long> MessagesDropped { get; }

    /// <summary>Bytes received.</summary>
    public Counter<long> BytesReceived { get; }

    /// <summary>Bytes sent.</summary>
    public Counter<long> BytesSent { get; }

    /// <summary>Replica changes a live silo did not take within the retry window.</summary>
    public Counter<long> ReplicaApplyFailures { get; }

    /// <summary>Replica entries changed by catch-up or digest repair; tag <c>kind</c>.</summary>
    public Counter<long> ReplicaRepairs { get; }

    /// <summary>Changes of exact filters sent to their shard's grain, one per shard (see <c>ITopicShardGrain.Accept</c>).</summary>
    public Counter<long> ShardAccepts { get; }

    /// <summary>Route replica writes sent, one per silo written; tag <c>kind</c> (<c>all</c> or <c>presence</c>).</summary>
    public Counter<long> ReplicaWrites { get; }

    /// <summary>Topic shard activations that left for their shard's new first route holder (<c>Mqtt:Routes:Sharding</c> Topic).</summary>
    public Counter<long> ShardHandoffs { get; }

    /// <summary>Gateways declared dead.</summary>
    public Counter<long> GatewaysLost { get; }

    /// <summary>Sessions set offline because their gateway died.</summary>
    public Counter<long> SessionsOwnerLost { get; }

    /// <summary>Stale session copies dropped from a silo's storage; tag <c>where</c> (<c>start</c> or <c>activation</c>).</summary>
    public Counter<long> SessionsStaleCopiesDropped { get; }

    /// <summary>Persistent sessions found with no surviving copy of their state and started afresh (Session Present 0).</summary>
    public Counter<long> SessionsLost { get; }

    /// <summary>Persistent sessions activated from a replica copy after their home silo was lost.</summary>
    public Counter<long> SessionsFailedOver { get; }

    /// <summary>Failed writes of session state to an active replica silo.</summary>
    public Counter<long> SessionReplicaWriteFailures { get; }

    /// <summary>Bytes of deliveries queued to connections and not yet written, summed over the gateway's connections.</summary>
    public UpDownCounter<long> PendingWriteBytes { get; }

    /// <summary>QoS 1/2 publishes refused by a limit; tag <c>reason</c>.</summary>
    public Counter<long> PublishesRefused { get; }

    /// <summary>The meter the instruments are created on (a listener tells this host's measurements from others' by it).</summary>
    public Meter Meter { get; }

    /// <summary>MQTT 3.1.1 QoS 1/2 publishes paced to their client's rate; tag <c>reason</c>.</summary>
    public Counter<long> PublishesDelayed { get; }

    /// <summary>Topic filters refused by a limit; tag <c>reason</c>.</summary>
    public Counter<long> SubscriptionsRefused { get; }

    /// <summary>Session copies written by re-replication after a membership change; tag <c>kind</c>.</summary>
    public Counter<long> SessionsRereplicated { get; }

    /// <summary>Sessions whose re-replication to a silo failed in a pass; tag <c>reason</c>.</summary>
    public Counter<long> SessionRereplicationFailures { get; }

    /// <summary>Session grains activated in this silo.</summary>
    public UpDownCounter<long> SessionsInMemory { get; }

    /// <summary>Publishes, subscriptions and wills the ACL refused, by action.</summary>
    public Counter<long> AclDenied { get; }

    /// <summary>Reloads of the ACL file, by outcome.</summary>
    public Counter<long> AclReloads { get; }

    /// <summary>PUBLISH packets whose <c>traceparent</c> user property did not parse.</summary>
    public Counter<long> TraceContextsInvalid { get; }

    /// <summary>Background full collections started by the heap trimmer.</summary>
    public Counter<long> HeapTrims { get; }

    /// <summary>Registers the gateway's overload gauge: 1 while it refuses new connections and sheds QoS 0, else 0.</summary>
    public void ObserveOverload(Func<int> state) =>
        _meter.CreateObservableGauge("mqtt.overload.state", state, description: "1 while the gateway is overloaded (Mqtt:Overload:*): new CONNECTs get Server busy and inbound QoS 0 publishes are dropped; 0 otherwise.");

    /// <summary>Registers the silo-side gauges (sessions, subscriptions, retained messages) read from the route replica.</summary>
    public void ObserveReplica(Func<long> sessions, Func<long> subscriptions, Func<long> retained, Func<long>? exactSubscriptions = null)
    {
        if (exactSubscriptions is not null)
        {
            _meter.CreateObservableGauge("mqtt.subscriptions.exact", exactSubscriptions, description: "Of the subscriptions in the route replica, those without wildcards (with Mqtt:Routes:Sharding Topic: of the topic shards this silo holds).");
        }

        _meter.CreateObservableGauge("mqtt.sessions", sessions, description: "Sessions known to the route replica (connected or persistent).");
        _meter.CreateObservableGauge("mqtt.subscriptions", subscriptions, description: "Subscriptions in the route replica.");
        _meter.CreateObservableGauge("mqtt.retained", retained, description: "Retained messages in the replica.");
    }
}
