using System.Net;

namespace Orleans.Mqtt.Gateway;

/// <summary>Listener and connection settings of a gateway (configuration section <c>Mqtt</c>).</summary>
public sealed class MqttGatewayOptions
{
    /// <summary>The configuration section the options bind to.</summary>
    public const string SectionName = "Mqtt";

    /// <summary>Address every MQTT listener binds to (<c>Mqtt:BindAddress</c>).</summary>
    public string BindAddress { get; set; } = "127.0.0.1";

    /// <summary>Identifier of this gateway in the cluster; generated when empty.</summary>
    public string? GatewayId { get; set; }

    /// <summary>MQTT over TCP (<c>Mqtt:Tcp:Port</c>, 0 disables; transport <c>Mqtt:Tcp:Transport</c>).</summary>
    public TcpListenerOptions Tcp { get; set; } = new() { Port = 1883 };

    /// <summary>MQTT over WebSocket (<c>Mqtt:WebSocket:Port</c>, 0 disables; path <c>Mqtt:WebSocket:Path</c>).</summary>
    public WebSocketListenerOptions WebSocket { get; set; } = new() { Port = 8083 };

    /// <summary>MQTT over TLS (<c>Mqtt:Tls:Port</c>); on only when a certificate is configured.</summary>
    public TlsListenerOptions Tls { get; set; } = new() { Port = 8883 };

    /// <summary>Whether clients without credentials may connect (<c>Mqtt:AllowAnonymous</c>). Default: true only when bound to loopback.</summary>
    public bool? AllowAnonymous { get; set; }

    /// <summary>Path of the users file (<c>username:hash</c> lines) checked for username/password authentication.</summary>
    public string? UsersFile { get; set; }

    /// <summary>JSON Web Tokens in the CONNECT password (<c>Mqtt:Jwt:*</c>).</summary>
    public JwtOptions Jwt { get; set; } = new();

    /// <summary>
    /// The order in which a CONNECT's identity sources are tried (<c>Mqtt:AuthenticationOrder</c>): a comma-separated list of
    /// <c>certificate</c>, <c>jwt</c> and <c>users</c>. The first source that recognises the connection's credentials decides;
    /// sources not configured are skipped. See <see cref="ConnectAuthenticator"/>.
    /// </summary>
    public string AuthenticationOrder { get; set; } = "certificate,jwt,users";
    /// <summary>
    /// Path of the ACL file (<c>Mqtt:AclFile</c>, mosquitto's <c>acl_file</c> format): once set, a client may publish and
    /// subscribe only where a rule allows it. Read again whenever it changes.
    /// </summary>
    public string? AclFile { get; set; }

    /// <summary>How ACL refusals are answered and how often the ACL file is checked (<c>Mqtt:Acl</c>).</summary>
    public AclOptions Acl { get; set; } = new();

    /// <summary>Largest packet accepted from a client, in bytes (<c>Mqtt:MaxPacketSize</c>); larger ones close the connection.</summary>
    public int MaxPacketSize { get; set; } = 1024 * 1024;

    /// <summary>Most open MQTT connections on this gateway (<c>Mqtt:MaxConnections</c>).</summary>
    public int MaxConnections { get; set; } = 100_000;

    /// <summary>How long a new connection may take to send CONNECT.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a packet may take to arrive once its first byte came (<c>Mqtt:PacketReadTimeout</c>); a packet still
    /// incomplete after it closes the connection. It holds whatever the keep alive is, keep alive 0 included, so a
    /// client cannot hold a partly sent packet (up to <c>Mqtt:MaxPacketSize</c> of buffer) open for ever. The default,
    /// 30 s, lets a packet of the default 1 MiB maximum arrive at about 280 kbit/s.
    /// </summary>
    public TimeSpan PacketReadTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long routing a publish may take before it counts as failed (<c>Mqtt:PublishTimeout</c>): the publisher gets
    /// PUBACK (or PUBREC) 0x80, an MQTT 3.1.1 publisher's connection closes, and the client sends it again. A publish
    /// caught in a silo that was killed would otherwise wait for Orleans' response timeout (30 s) while the rest of that
    /// connection waits behind it. A publish that only was slow may still arrive, and arrive twice once re-sent. The
    /// same bound holds for every other grain call a connection waits on (QoS 2 packet ids, acknowledgements of
    /// deliveries, PUBREL, SUBSCRIBE, UNSUBSCRIBE, the end of the connection), each cancelled through its
    /// CancellationToken when it runs out. A call safe to repeat (QoS 0/1 routing, the QoS 2 id calls, SUBSCRIBE,
    /// UNSUBSCRIBE, the end of the connection) is sent once more first, so a client waits at most twice this; an
    /// acknowledgement or a PUBREL that still gets no answer closes the connection (MQTT 5: DISCONNECT 0x80) and the
    /// client resumes its session.
    /// </summary>
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// How long the client's session may take to accept a CONNECT (<c>Mqtt:SessionConnectTimeout</c>) before the
    /// client gets CONNACK 0x88 Server unavailable (MQTT 3.1.1: return code 3) and retries. A session caught in a silo
    /// that was killed would otherwise hold the CONNECT for Orleans' response timeout (30 s). A session call that
    /// completes after the refusal does not leave the session connected to the closed connection: it ends as lost.
    /// A takeover that continues the session tells the older connection only if the gateway still waits for it, so an
    /// abandoned one leaves the older connection the session. Not lower by default: a first connect on a loaded silo,
    /// or many connects of one client id waiting their turn at its session, can take seconds.
    /// </summary>
    public TimeSpan SessionConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How much longer a grain call the client waits on (routing a publish, a session call of a QoS 1/2 flow, a CONNECT)
    /// may take once the gateway has lost its connection to a silo while the call was under way
    /// (<c>Mqtt:SiloLossGrace</c>); past it, the call fails as it would past <see cref="PublishTimeout"/> or
    /// <see cref="SessionConnectTimeout"/>. A call that reached the silo before it was killed is answered by nobody;
    /// with the shipped failure detection the rest of the cluster declares that silo dead 1.2-1.6 s after a kill. Not
    /// shorter by default: calls to live silos that were waiting on the lost one (a session saving its copy there)
    /// complete once it is declared dead, and one failed needlessly costs a re-send or a reconnect.
    /// </summary>
    public TimeSpan SiloLossGrace { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Most QoS 0 messages waiting to be written to one slow connection before newer ones are dropped.</summary>
    public int MaxPendingWrites { get; set; } = 10_000;

    /// <summary>
    /// Most payload and topic bytes of QoS 0 messages waiting to be written to one slow connection
    /// (<c>Mqtt:MaxPendingWriteBytes</c>); newer QoS 0 messages are dropped and counted as <c>slow_consumer</c>. A message
    /// still goes to a connection with nothing queued whatever its size. QoS 1/2 messages are not dropped: the
    /// session's in-flight window bounds them. The default, 1 MiB, is the default <c>Mqtt:MaxPacketSize</c> and about
    /// what <c>Mqtt:MaxPendingWrites</c> allows for 100-byte messages, so a client that reads holds at most a couple of
    /// MiB on the gateway however large the messages published to it are.
    /// </summary>
    public long MaxPendingWriteBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// How often the gateway reports in to the cluster (<c>Mqtt:HeartbeatInterval</c>); keep it well below the silos'
    /// <c>Mqtt:GatewayTimeout</c> (default 10 s), after which a silent gateway is declared dead.
    /// </summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Topic Alias Maximum advertised to MQTT 5 clients in CONNACK (<c>Mqtt:TopicAliasMaximum</c>): how many topic aliases a
    /// client may set up per connection for the PUBLISH packets it sends; 0 disables inbound topic aliases.
    /// </summary>
    public int TopicAliasMaximum { get; set; } = 10;

    /// <summary>
    /// Receive Maximum advertised to MQTT 5 clients in CONNACK (<c>Mqtt:ReceiveMaximum</c>): how many QoS 1/2 PUBLISH
    /// packets a client may have unacknowledged at once; one more closes the connection with DISCONNECT 0x93.
    /// </summary>
    public int ReceiveMaximum { get; set; } = 100;

    /// <summary>
    /// Largest keep alive in seconds an MQTT 5 client may use (<c>Mqtt:MaxKeepAlive</c>); 0 means no maximum. A client
    /// asking for 0 (none) or more gets this value as Server Keep Alive in CONNACK and is held to it. MQTT 3.1.1 has no
    /// way to tell the client, so 3.1.1 clients keep the keep alive they asked for.
    /// </summary>
    public int MaxKeepAlive { get; set; }

    /// <summary>
    /// Whether log scopes are kept (<c>Mqtt:LogScopes</c>). Off by default: Kestrel opens a scope around every
    /// connection (its connection id), and the scope with the execution context that carries it stays alive as long as
    /// the connection, about 200 bytes per idle connection (docs/benchmarks.md, "The gateway's bytes per idle
    /// connection"). Nothing of the broker's own logging uses scopes; turn it on for a log provider that prints them
    /// (<c>Logging:Console:FormatterOptions:IncludeScopes</c>).
    /// </summary>
    public bool LogScopes { get; set; }

    /// <summary>Per-client rates, per-listener connection rate, subscription and topic limits (<c>Mqtt:Limits:*</c>).</summary>
    public LimitsOptions Limits { get; set; } = new();

    /// <summary>When the gateway process counts as overloaded (<c>Mqtt:Overload:*</c>).</summary>
    public OverloadOptions Overload { get; set; } = new();

    /// <summary>The effective anonymous setting.</summary>
    public bool AnonymousAllowed => AllowAnonymous ?? (IPAddress.TryParse(BindAddress, out var ip) && IPAddress.IsLoopback(ip));
}
