namespace Orleans.Mqtt.Gateway;

/// <summary>
/// What one client, and one listener, may ask of a gateway (configuration section <c>Mqtt:Limits</c>). Rates are token
/// buckets: a rate of 0 turns that limit off.
/// </summary>
public sealed class LimitsOptions
{
    /// <summary>
    /// PUBLISH packets per second one connection may send (<c>Mqtt:Limits:MessagesPerSecond</c>, 0 = no limit). Over it,
    /// QoS 0 is dropped and counted, QoS 1/2 gets PUBACK/PUBREC 0x97 in MQTT 5, and an MQTT 3.1.1 connection's reading
    /// pauses until the rate allows the packet. Off by default: a broker cannot know what a fleet's normal rate is, and
    /// the unlimited default is what the throughput benchmarks measure.
    /// </summary>
    public double MessagesPerSecond { get; set; }

    /// <summary>PUBLISH packets a connection may send at once above its rate (<c>Mqtt:Limits:MessageBurst</c>); 0 = one second's worth.</summary>
    public double MessageBurst { get; set; }

    /// <summary>
    /// Payload bytes per second one connection may publish (<c>Mqtt:Limits:BytesPerSecond</c>, 0 = no limit); over it,
    /// as for <see cref="MessagesPerSecond"/>. A packet larger than the burst waits for a full bucket and leaves it in
    /// debt, so the average holds whatever the packet sizes are.
    /// </summary>
    public double BytesPerSecond { get; set; }

    /// <summary>Payload bytes a connection may publish at once above its rate (<c>Mqtt:Limits:ByteBurst</c>); 0 = one second's worth.</summary>
    public double ByteBurst { get; set; }

    /// <summary>
    /// New connections per second each listener (TCP, TLS, WebSocket) accepts (<c>Mqtt:Limits:ConnectionsPerSecond</c>,
    /// 0 = no limit). A connection over it is counted when it is accepted and its CONNECT is answered with CONNACK 0x9F
    /// (MQTT 5) / 3 (3.1.1) before credentials are checked or a grain is called.
    /// </summary>
    public double ConnectionsPerSecond { get; set; }

    /// <summary>Connections a listener accepts at once above its rate (<c>Mqtt:Limits:ConnectionBurst</c>); 0 = one second's worth.</summary>
    public double ConnectionBurst { get; set; }

    /// <summary>
    /// Subscriptions one session may hold (<c>Mqtt:Limits:MaxSubscriptionsPerClient</c>, 0 = no limit), counting the
    /// ones it kept from earlier connections; a filter that would add one more gets SUBACK 0x97 (MQTT 5) / 0x80 (3.1.1).
    /// Replacing a subscription the session has is always allowed.
    /// </summary>
    public int MaxSubscriptionsPerClient { get; set; }

    /// <summary>
    /// Longest topic name or topic filter in characters (<c>Mqtt:Limits:MaxTopicLength</c>). The default is MQTT's own
    /// limit (65535 bytes), so only a lower value adds a check.
    /// </summary>
    public int MaxTopicLength { get; set; } = 65_535;

    /// <summary>
    /// Most levels (parts between <c>/</c>) of a topic name or topic filter (<c>Mqtt:Limits:MaxTopicLevels</c>, 0 = no limit).
    /// The default, 128, is far beyond any real topic tree and bounds the depth of the subscription trie.
    /// </summary>
    public int MaxTopicLevels { get; set; } = 128;
}
