namespace Orleans.Mqtt.Gateway;

/// <summary>The MQTT over TCP listener (<c>Mqtt:Tcp</c>).</summary>
public sealed class TcpListenerOptions : ListenerOptions
{
    /// <summary>
    /// What accepts and carries the listener's connections (<c>Mqtt:Tcp:Transport</c>): <see cref="TcpTransport.Sockets"/>,
    /// the gateway's own socket transport, or <see cref="TcpTransport.Kestrel"/>, ASP.NET Core's server.
    /// </summary>
    public TcpTransport Transport { get; set; } = TcpTransport.Sockets;
}

/// <summary>The transports MQTT over TCP can run on (<c>Mqtt:Tcp:Transport</c>).</summary>
public enum TcpTransport
{
    /// <summary>
    /// The gateway's own accept loop and one small object per connection over its socket: an idle connection holds no
    /// buffer and none of Kestrel's per-connection state (pipes, connection loop, features, connection table entry).
    /// </summary>
    Sockets,

    /// <summary>Kestrel's socket transport and connection handling, as the TLS and WebSocket listeners use.</summary>
    Kestrel,
}
