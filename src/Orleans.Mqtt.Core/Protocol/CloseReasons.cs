namespace Orleans.Mqtt.Protocol;

/// <summary>
/// The one table of what each <see cref="CloseReason"/> means on the wire, in metrics and in logs. Reason codes are
/// the values of MQTT 3.1.1 section 3.2.2.3 (CONNACK return codes) and MQTT 5 section 2.4 (reason codes); no other
/// place in the broker writes them as numbers.
/// </summary>
public static class CloseReasons
{
    /// <summary>The name of the metric tag every reason is counted under.</summary>
    public const string TagName = "reason";

    // Indexed by CloseReason; the order must follow the enum (checked when the class loads).
    private static readonly CloseReasonInfo[] Table =
    [
        //  reason                                   metric tag                       3.1.1 CONNACK  5 CONNACK  5 DISCONNECT  log text
        new(CloseReason.ProtocolError,              "protocol_error",                null,          0x82,      0x82,         "protocol error"),
        new(CloseReason.MalformedPacket,            "malformed_packet",              null,          0x81,      0x81,         "malformed packet"),
        new(CloseReason.InvalidUtf8,                "invalid_utf8",                  null,          0x81,      0x81,         "string not valid UTF-8"),
        new(CloseReason.PacketIdentifierZero,       "packet_id_zero",                null,          0x82,      0x82,         "packet identifier 0"),
        new(CloseReason.PacketTooLarge,             "packet_too_large",              null,          null,      0x95,         "packet too large"),
        new(CloseReason.InvalidTopic,               "invalid_topic",                 0x03,          0x90,      0x90,         "topic name invalid"),
        new(CloseReason.ReceiveMaximumExceeded,     "receive_maximum_exceeded",      null,          null,      0x93,         "receive maximum exceeded"),
        new(CloseReason.TopicAliasInvalid,          "topic_alias_invalid",           null,          null,      0x94,         "topic alias invalid"),
        new(CloseReason.PayloadFormatInvalid,       "payload_format_invalid",        null,          null,      0x99,         "payload format invalid"),
        new(CloseReason.ConnectTimeout,             "connect_timeout",               null,          null,      0x87,         "no CONNECT in time"),
        new(CloseReason.KeepAliveTimeout,           "keep_alive_timeout",            null,          null,      0x8D,         "keep alive timeout"),
        new(CloseReason.PacketReadTimeout,          "packet_read_timeout",           null,          null,      0x80,         "packet not complete in time"),
        new(CloseReason.PublishFailed,              "publish_failed",                null,          null,      0x80,         "publish could not be routed"),
        new(CloseReason.SessionTakenOver,           "session_taken_over",            null,          null,      0x8E,         "session taken over by another connection"),
        new(CloseReason.ServerShuttingDown,         "server_shutting_down",          0x03,          0x88,      0x8B,         "server shutting down"),
        new(CloseReason.GatewayDeclaredDead,        "gateway_declared_dead",         null,          null,      0x80,         "gateway declared dead by the cluster"),
        new(CloseReason.UnsupportedProtocolVersion, "unsupported_protocol_version",  0x01,          0x84,      null,         "unsupported protocol version"),
        new(CloseReason.ClientIdRejected,           "client_id_rejected",            0x02,          0x85,      null,         "client identifier not valid"),
        new(CloseReason.BadAuthenticationMethod,    "bad_authentication_method",     0x05,          0x8C,      null,         "bad authentication method"),
        new(CloseReason.BadCredentials,             "bad_credentials",               0x04,          0x86,      null,         "bad user name or password"),
        new(CloseReason.NotAuthorized,              "not_authorized",                0x05,          0x87,      null,         "not authorized"),
        new(CloseReason.MaxConnections,             "max_connections",               0x03,          0x97,      null,         "connection quota exceeded"),
        new(CloseReason.SessionUnavailable,         "session_unavailable",           0x03,          0x88,      null,         "session not available"),
        new(CloseReason.ConnectionRateExceeded,     "connection_rate_exceeded",      0x03,          0x9F,      null,         "connection rate exceeded"),
        new(CloseReason.ServerBusy,                 "server_busy",                   0x03,          0x89,      0x89,         "server busy"),
        new(CloseReason.TopicTooLong,               "topic_too_long",                0x03,          0x90,      0x90,         "topic longer than Mqtt:Limits:MaxTopicLength"),
        new(CloseReason.TopicTooManyLevels,         "topic_too_many_levels",         0x03,          0x90,      0x90,         "topic with more levels than Mqtt:Limits:MaxTopicLevels"),
        new(CloseReason.CredentialsExpired,         "credentials_expired",           null,          null,      0xA0,         "credentials expired"),
        new(CloseReason.WebSocketTextFrame,         "websocket_text_frame",          null,          null,      null,         "WebSocket text frame"),
        new(CloseReason.WebSocketFrameError,        "websocket_frame_error",         null,          null,      null,         "WebSocket frame error"),
        new(CloseReason.AdministrativeAction,       "administrative_action",         null,          null,      0x98,         "disconnected by an administrator"),
        new(CloseReason.SessionFailedOver,          "session_failed_over",           null,          null,      0x8B,         "session failed over to another silo; the client resumes it"),
        new(CloseReason.SessionConnectTimeout,      "session_connect_timeout",       0x03,          0x88,      null,         "session did not take the connection in time"),
        new(CloseReason.SessionUnresponsive,        "session_unresponsive",          null,          null,      0x80,         "session did not answer in time; the client resumes it"),
        new(CloseReason.FileLimit,                  "file_limit",                    null,          null,      null,         "open file limit reached; socket closed when accepted"),
    ];

    static CloseReasons()
    {
        for (var i = 0; i < Table.Length; i++)
        {
            if ((int)Table[i].Reason != i)
            {
                throw new InvalidOperationException($"CloseReasons table out of order at {Table[i].Reason}.");
            }
        }
    }

    /// <summary>The metric tag value (<c>reason="..."</c>) of <paramref name="reason"/>; also the MQTT 5 reason string.</summary>
    public static string Tag(this CloseReason reason) => Table[(int)reason].Tag;

    /// <summary>The metric tag of <paramref name="reason"/>, made once (no allocation per count).</summary>
    public static KeyValuePair<string, object?> MetricTag(this CloseReason reason) => Table[(int)reason].MetricTag;

    /// <summary>Words for logs.</summary>
    public static string LogText(this CloseReason reason) => Table[(int)reason].LogText;

    /// <summary>
    /// The MQTT 5 DISCONNECT reason code the server sends for <paramref name="reason"/>. A reason that only refuses a
    /// CONNECT has none and gives 0x80 (unspecified error).
    /// </summary>
    public static byte DisconnectReasonCode(this CloseReason reason) => Table[(int)reason].DisconnectCode ?? UnspecifiedError;

    /// <summary>The MQTT 5 CONNACK reason code refusing a CONNECT for <paramref name="reason"/> (0x80 when none is defined).</summary>
    public static byte ConnectReasonCode(this CloseReason reason) => Table[(int)reason].ConnectReasonCode ?? UnspecifiedError;

    /// <summary>
    /// The MQTT 3.1.1 CONNACK return code refusing a CONNECT for <paramref name="reason"/>; 3.1.1 has few, so reasons
    /// without their own get 0x03 (server unavailable).
    /// </summary>
    public static byte ConnectReturnCode(this CloseReason reason) => Table[(int)reason].ConnectReturnCode ?? ServerUnavailable311;

    /// <summary>Whether an MQTT 5 reason code reports a failure (0x80 and above, MQTT 5 section 2.4).</summary>
    public static bool IsFailure(byte reasonCode) => reasonCode >= UnspecifiedError;

    private const byte UnspecifiedError = 0x80;
    private const byte ServerUnavailable311 = 0x03;

    private sealed class CloseReasonInfo(CloseReason reason, string tag, byte? connectReturnCode, byte? connectReasonCode, byte? disconnectCode, string logText)
    {
        public CloseReason Reason { get; } = reason;

        public string Tag { get; } = tag;

        public KeyValuePair<string, object?> MetricTag { get; } = new(TagName, tag);

        public byte? ConnectReturnCode { get; } = connectReturnCode;

        public byte? ConnectReasonCode { get; } = connectReasonCode;

        public byte? DisconnectCode { get; } = disconnectCode;

        public string LogText { get; } = logText;
    }
}
