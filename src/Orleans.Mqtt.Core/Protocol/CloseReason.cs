namespace Orleans.Mqtt.Protocol;

/// <summary>
/// Why the server ends a connection: refuses its CONNECT, rejects a packet and closes, or closes it on its own. Each
/// reason has one metric tag, one log text and the reason codes a client is told, all in <see cref="CloseReasons"/>.
/// </summary>
public enum CloseReason
{
    /// <summary>A packet broke the protocol (a second CONNECT, an unknown alias, No Local on a shared subscription...).</summary>
    ProtocolError,

    /// <summary>A packet could not be decoded.</summary>
    MalformedPacket,

    /// <summary>A UTF-8 string field that is not well-formed UTF-8 or holds U+0000: a malformed packet.</summary>
    InvalidUtf8,

    /// <summary>A packet identifier of 0 where one is required [MQTT-2.2.1-3]: a protocol error.</summary>
    PacketIdentifierZero,

    /// <summary>A packet was over <c>Mqtt:MaxPacketSize</c>.</summary>
    PacketTooLarge,

    /// <summary>A PUBLISH or will topic name that is not valid.</summary>
    InvalidTopic,

    /// <summary>More QoS 1/2 publishes unacknowledged than the Receive Maximum the CONNACK advertised.</summary>
    ReceiveMaximumExceeded,

    /// <summary>A Topic Alias of 0 or over the Topic Alias Maximum.</summary>
    TopicAliasInvalid,

    /// <summary>A QoS 0 PUBLISH that says UTF-8 and carries a payload that is not.</summary>
    PayloadFormatInvalid,

    /// <summary>No CONNECT within <c>Mqtt:ConnectTimeout</c>.</summary>
    ConnectTimeout,

    /// <summary>One and a half times the keep alive without a packet.</summary>
    KeepAliveTimeout,

    /// <summary>A packet begun and not complete within <c>Mqtt:PacketReadTimeout</c>.</summary>
    PacketReadTimeout,

    /// <summary>A message could not be routed (MQTT 3.1.1 has no way to say so but closing).</summary>
    PublishFailed,

    /// <summary>Another connection took over the client id.</summary>
    SessionTakenOver,

    /// <summary>The gateway is stopping.</summary>
    ServerShuttingDown,

    /// <summary>The cluster declared the gateway dead while it was cut off.</summary>
    GatewayDeclaredDead,

    /// <summary>CONNECT with a protocol name or level that is not MQTT 3.1, 3.1.1 or 5.</summary>
    UnsupportedProtocolVersion,

    /// <summary>CONNECT with an empty client id that MQTT 3.1.1 does not allow (without clean session).</summary>
    ClientIdRejected,

    /// <summary>MQTT 5 CONNECT with an authentication method (none is supported).</summary>
    BadAuthenticationMethod,

    /// <summary>CONNECT with a user name or password that does not check out.</summary>
    BadCredentials,

    /// <summary>CONNECT without credentials where anonymous clients are not allowed.</summary>
    NotAuthorized,

    /// <summary>CONNECT over <c>Mqtt:MaxConnections</c>.</summary>
    MaxConnections,

    /// <summary>The client's session grain could not be reached at CONNECT.</summary>
    SessionUnavailable,

    /// <summary>A connection accepted over its listener's <c>Mqtt:Limits:ConnectionsPerSecond</c>.</summary>
    ConnectionRateExceeded,

    /// <summary>CONNECT while the gateway is overloaded (<c>Mqtt:Overload:*</c>).</summary>
    ServerBusy,

    /// <summary>A PUBLISH or will topic, or a topic filter, longer than <c>Mqtt:Limits:MaxTopicLength</c>.</summary>
    TopicTooLong,

    /// <summary>A PUBLISH or will topic, or a topic filter, with more levels than <c>Mqtt:Limits:MaxTopicLevels</c>.</summary>
    TopicTooManyLevels,
    /// <summary>The credentials the connection was accepted with ran out (a token's <c>exp</c>).</summary>
    CredentialsExpired,
    /// <summary>A WebSocket text frame: MQTT over WebSocket is binary frames only [MQTT-6.0.0-1].</summary>
    WebSocketTextFrame,

    /// <summary>A frame that breaks the WebSocket protocol (unmasked, an oversized control frame, an unknown opcode).</summary>
    WebSocketFrameError,

    /// <summary>An operator disconnected the client through the admin API.</summary>
    AdministrativeAction,

    /// <summary>
    /// The client's session came back on another silo after its home silo died, with messages in flight the dead silo
    /// had sent: closed so that the client reconnects and gets them again, which MQTT allows only on a new connection.
    /// </summary>
    SessionFailedOver,
    /// <summary>The client's session grain did not take the connection within <c>Mqtt:SessionConnectTimeout</c>.</summary>
    SessionConnectTimeout,

    /// <summary>
    /// A call the connection made to its session (acknowledgements, a PUBREL) failed or went unanswered within
    /// <c>Mqtt:PublishTimeout</c>, and could not be retried safely: closed so that the client reconnects and resumes
    /// the session, whose unacknowledged messages come again.
    /// </summary>
    SessionUnresponsive,

    /// <summary>
    /// A socket accepted while the MQTT listeners already had as many open as the open-file limit leaves room for
    /// (<c>Mqtt:FileDescriptorReserve</c>): closed at once, before any packet.
    /// </summary>
    FileLimit,
}
