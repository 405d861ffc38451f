namespace Orleans.Mqtt.Grains;

/// <summary>The MQTT session of one client id: subscriptions, will, offline queue, in-flight messages, owner connection.</summary>
/// <remarks>
/// The <c>cancellationToken</c> of the calls a gateway makes while its client waits is cancelled when the gateway gave
/// up on the call (<c>Mqtt:PublishTimeout</c>, <c>Mqtt:SessionConnectTimeout</c>): Orleans then drops the call if it
/// is still queued at the session and completes the gateway's side at once. A call that already runs is not stopped
/// (except <see cref="Connect"/>, see there): each of them either changes nothing or is safe to run again.
/// <para>
/// The array arguments are <see cref="ImmutableAttribute">[Immutable]</see>: every caller builds a new array for the
/// call and never writes to it again, and the session only reads it. Without the attribute each reference made to a
/// session (one per connection at the gateway) resolved four array copiers through reflection when it was made, about
/// 1 % of the standalone broker's CPU in a connect storm, and every call within the silo copied its array.
/// </para>
/// </remarks>
public interface IClientSessionGrain : IGrainWithStringKey
{
    /// <summary>
    /// Takes ownership of the session for a new connection; any older connection is disconnected with 0x8E.
    /// <paramref name="cancellationToken"/> is cancelled when the gateway gave up waiting (<c>Mqtt:SessionConnectTimeout</c>)
    /// and refused the client: a call not started yet does nothing, and one that finishes after it ends the connection
    /// it took as lost instead of leaving the session connected to it.
    /// </summary>
    Task<ConnectResult> Connect(ConnectRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// The connection ended. Returns the will message the caller must publish now, if any (a will with a delay is
    /// kept by the session and published by it). <paramref name="sessionExpiryInterval"/> is the MQTT 5 DISCONNECT's
    /// new Session Expiry Interval, when it carried one.
    /// </summary>
    Task<MqttMessage?> Disconnect(long connectionId, DisconnectKind kind, uint? sessionExpiryInterval = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Adds or replaces subscriptions; returns once they are routable on every live silo. A filter that would take the
    /// session over <paramref name="maxSubscriptions"/> subscriptions (0: no limit), those it kept from earlier
    /// connections included, is not added and gets <see cref="Protocol.SubscribeReasonCodes.QuotaExceeded"/>.
    /// </summary>
    Task<SubscribeResult> Subscribe(long connectionId, [Immutable] Subscription[] subscriptions, int maxSubscriptions = 0, CancellationToken cancellationToken = default);

    /// <summary>Removes subscriptions; returns per filter whether it existed.</summary>
    Task<bool[]> Unsubscribe(long connectionId, [Immutable] string[] filters, CancellationToken cancellationToken = default);

    /// <summary>Queues QoS 1/2 messages for this session and sends what the in-flight window allows.</summary>
    Task Deliver([Immutable] SessionDelivery[] deliveries);

    /// <summary>An acknowledgement for an outbound message from the client.</summary>
    Task Acknowledge(long connectionId, ushort packetId, OutboundAck ack);

    /// <summary>Acknowledgements for outbound messages, in the order the client sent them; one save and one push for all.</summary>
    Task AcknowledgeBatch(long connectionId, [Immutable] OutboundAcknowledgement[] acks, CancellationToken cancellationToken = default);

    /// <summary>For the sweeper: publishes a delayed will that is due and ends the session if it has expired.</summary>
    Task ExpireIfDue();

    /// <summary>Whether an inbound QoS 2 packet id is already received and not yet released (a duplicate must not be routed again).</summary>
    Task<bool> IsInboundQos2Pending(ushort packetId, CancellationToken cancellationToken = default);

    /// <summary>Records an inbound QoS 2 packet id as received (after its message was routed).</summary>
    Task AddInboundQos2(long connectionId, ushort packetId, CancellationToken cancellationToken = default);

    /// <summary>PUBREL: forgets an inbound QoS 2 packet id.</summary>
    Task ReleaseInboundQos2(long connectionId, ushort packetId, CancellationToken cancellationToken = default);

    /// <summary>
    /// For the admin API: the session as it is now, or null when the client id has no session (no session is created
    /// for it). Changes nothing.
    /// </summary>
    Task<ClientDetails?> Describe();

    /// <summary>
    /// For the admin API: disconnects the client's connection, wherever it is (MQTT 5: DISCONNECT 0x98, administrative
    /// action), as a connection lost (its will goes out); with <paramref name="discardSession"/> the session ends too.
    /// False when the client id has no session.
    /// </summary>
    Task<bool> Kick(bool discardSession);

    /// <summary>
    /// For the admin API: adds subscriptions as <see cref="Subscribe"/> does for the live connection (routable on every
    /// live silo when it returns; retained messages served), also to a session whose client is offline. Null when the
    /// client id has no session.
    /// </summary>
    Task<byte[]?> AdminSubscribe([Immutable] Subscription[] subscriptions);

    /// <summary>For the admin API: removes subscriptions as <see cref="Unsubscribe"/> does; null when the client id has no session.</summary>
    Task<bool[]?> AdminUnsubscribe([Immutable] string[] filters);
}
