using System.Net;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Hosting;

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

    /// <summary>MQTT over TCP (<c>Mqtt:Tcp:Port</c>, 0 disables).</summary>
    public ListenerOptions Tcp { get; set; } = new() { Port = 1883 };

    /// <summary>MQTT over WebSocket (<c>Mqtt:WebSocket:Port</c>, 0 disables; path <c>Mqtt:WebSocket:Path</c>).</summary>
    public WebSocketListenerOptions WebSocket { get; set; } = new() { Port = 8083 };

    /// <summary>MQTT over TLS (<c>Mqtt:Tls:Port</c>); on only when a certificate is configured.</summary>
    public TlsListenerOptions Tls { get; set; } = new() { Port = 8883 };

    /// <summary>Whether clients without credentials may connect (<c>Mqtt:AllowAnonymous</c>). Default: true only when bound to loopback.</summary>
    public bool? AllowAnonymous { get; set; }

    /// <summary>Path of the users file (<c>username:hash</c> lines) checked for username/password authentication.</summary>
    public string? UsersFile { get; set; }

    /// <summary>Largest packet accepted from a client, in bytes (<c>Mqtt:MaxPacketSize</c>); larger ones close the connection.</summary>
    public int MaxPacketSize { get; set; } = 1024 * 1024;

    /// <summary>Most open MQTT connections on this gateway (<c>Mqtt:MaxConnections</c>).</summary>
    public int MaxConnections { get; set; } = 100_000;

    /// <summary>How long a new connection may take to send CONNECT.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Most QoS 0 messages waiting to be written to one slow connection before newer ones are dropped.</summary>
    public int MaxPendingWrites { get; set; } = 10_000;

    /// <summary>How often the <c>$SYS/broker/…</c> topics are published (<c>Mqtt:SysInterval</c>); zero turns them off.</summary>
    public TimeSpan SysInterval { get; set; } = TimeSpan.FromSeconds(10);

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

    /// <summary>The effective anonymous setting.</summary>
    public bool AnonymousAllowed => AllowAnonymous ?? (IPAddress.TryParse(BindAddress, out var ip) && IPAddress.IsLoopback(ip));
}

/// <summary>A TCP listener.</summary>
public class ListenerOptions
{
    /// <summary>Port; 0 turns the listener off.</summary>
    public int Port { get; set; }
}

/// <summary>The WebSocket listener.</summary>
public sealed class WebSocketListenerOptions : ListenerOptions
{
    /// <summary>Request path MQTT clients connect to.</summary>
    public string Path { get; set; } = "/mqtt";
}

/// <summary>The TLS listener.</summary>
public sealed class TlsListenerOptions : ListenerOptions
{
    /// <summary>PEM file with the server certificate (chain).</summary>
    public string? CertificateFile { get; set; }

    /// <summary>PEM file with the certificate's private key.</summary>
    public string? KeyFile { get; set; }

    /// <summary>Whether the TLS listener is on.</summary>
    public bool Enabled => Port > 0 && !string.IsNullOrEmpty(CertificateFile);
}

/// <summary>The HTTP endpoint for health, metrics and administration (configuration section <c>Http</c>).</summary>
public sealed class HttpEndpointOptions
{
    /// <summary>The configuration section the options bind to.</summary>
    public const string SectionName = "Http";

    /// <summary>Port of <c>/health/live</c>, <c>/health/ready</c> and <c>/metrics</c> (<c>Http:Port</c>, 0 disables).</summary>
    public int Port { get; set; } = 8080;
}

/// <summary>Fails at startup on an <c>Http:Port</c> that cannot be a port.</summary>
public sealed class HttpEndpointOptionsValidator : IValidateOptions<HttpEndpointOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, HttpEndpointOptions options) =>
        ListenerSettings.PortError(ListenerSettings.HttpPort, options.Port) is { } error ? ValidateOptionsResult.Fail(error) : ValidateOptionsResult.Success;
}

/// <summary>Fails at startup on gateway settings that cannot work, naming the setting.</summary>
public sealed class MqttGatewayOptionsValidator : IValidateOptions<MqttGatewayOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, MqttGatewayOptions o)
    {
        var errors = new List<string>();
        if (ListenerSettings.BindAddressError(o.BindAddress) is { } badAddress)
        {
            errors.Add(badAddress);
        }

        CheckPort(errors, "Mqtt:Tcp:Port", o.Tcp.Port);
        CheckPort(errors, "Mqtt:WebSocket:Port", o.WebSocket.Port);
        CheckPort(errors, "Mqtt:Tls:Port", o.Tls.Port);
        if (!o.WebSocket.Path.StartsWith('/'))
        {
            errors.Add($"Mqtt:WebSocket:Path must start with '/' (was '{o.WebSocket.Path}').");
        }

        if (o.Tls.Enabled)
        {
            if (!File.Exists(o.Tls.CertificateFile))
            {
                errors.Add($"Mqtt:Tls:CertificateFile '{o.Tls.CertificateFile}' does not exist.");
            }

            if (string.IsNullOrEmpty(o.Tls.KeyFile) || !File.Exists(o.Tls.KeyFile))
            {
                errors.Add($"Mqtt:Tls:KeyFile '{o.Tls.KeyFile}' does not exist (a PEM private key is required with Mqtt:Tls:CertificateFile).");
            }
        }

        if (o.UsersFile is { Length: > 0 } users && !File.Exists(users))
        {
            errors.Add($"Mqtt:UsersFile '{users}' does not exist.");
        }

        if (o.MaxPacketSize is < 64 or > 268_435_455)
        {
            errors.Add($"Mqtt:MaxPacketSize must be between 64 and 268435455 bytes (was {o.MaxPacketSize}).");
        }

        if (o.MaxConnections < 1)
        {
            errors.Add($"Mqtt:MaxConnections must be at least 1 (was {o.MaxConnections}).");
        }

        if (o.ConnectTimeout <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:ConnectTimeout must be positive (was {o.ConnectTimeout}).");
        }

        if (o.HeartbeatInterval <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:HeartbeatInterval must be positive (was {o.HeartbeatInterval}).");
        }

        if (o.SysInterval < TimeSpan.Zero)
        {
            errors.Add($"Mqtt:SysInterval must not be negative (was {o.SysInterval}).");
        }

        if (o.MaxPendingWrites < 1)
        {
            errors.Add($"Mqtt:MaxPendingWrites must be at least 1 (was {o.MaxPendingWrites}).");
        }

        if (o.TopicAliasMaximum is < 0 or > ushort.MaxValue)
        {
            errors.Add($"Mqtt:TopicAliasMaximum must be between 0 and 65535 (was {o.TopicAliasMaximum}).");
        }

        if (o.ReceiveMaximum is < 1 or > ushort.MaxValue)
        {
            errors.Add($"Mqtt:ReceiveMaximum must be between 1 and 65535 (was {o.ReceiveMaximum}).");
        }

        if (o.MaxKeepAlive is < 0 or > ushort.MaxValue)
        {
            errors.Add($"Mqtt:MaxKeepAlive must be between 0 and 65535 seconds (was {o.MaxKeepAlive}).");
        }

        if (!o.AnonymousAllowed && string.IsNullOrEmpty(o.UsersFile))
        {
            errors.Add("Mqtt:AllowAnonymous is false (the default off loopback) but no Mqtt:UsersFile is configured: no client could connect.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void CheckPort(List<string> errors, string setting, int port)
    {
        if (ListenerSettings.PortError(setting, port) is { } error)
        {
            errors.Add(error);
        }
    }
}
