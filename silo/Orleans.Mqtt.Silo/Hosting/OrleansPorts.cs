using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Orleans.Configuration;
using Orleans.Mqtt.Clustering;

namespace Orleans.Mqtt.Silo;

/// <summary>
/// Refuses to start a silo on an Orleans port (<c>Orleans:SiloPort</c>, <c>Orleans:GatewayPort</c>) that another
/// process holds. Orleans binds its listeners with address reuse, which on Linux includes <c>SO_REUSEPORT</c>: a second
/// silo on the same port would bind beside the first without an error and the kernel would split the connections
/// between them. So each port is tried first with a socket that does not share (only <c>SO_REUSEADDR</c>, which lets a
/// port in TIME_WAIT after a crash be taken again but not one a listener holds).
/// </summary>
public static class OrleansPorts
{
    // setsockopt(SOL_SOCKET, SO_REUSEADDR) on Linux: .NET's ReuseAddress sets SO_REUSEPORT as well there.
    private const int SolSocket = 1;
    private const int SoReuseAddr = 2;

    /// <summary>
    /// The startup error for the first Orleans port another process holds, naming its setting; null when they are free
    /// (or the host does not listen on one).
    /// </summary>
    public static string? FindTaken(IConfiguration configuration)
    {
        (string Setting, int Port)[] ports =
        [
            ("Orleans:SiloPort", configuration.GetValue("Orleans:SiloPort", EndpointOptions.DEFAULT_SILO_PORT)),
            ("Orleans:GatewayPort", configuration.GetValue("Orleans:GatewayPort", EndpointOptions.DEFAULT_GATEWAY_PORT)),
        ];
        var address = ListenAddress(configuration);
        foreach (var (setting, port) in ports)
        {
            if (port is > 0 and <= IPEndPoint.MaxPort && IsHeld(address, port))
            {
                return $"Startup failed: port {port}: address already in use. Another process listens on that port (a second silo there would "
                    + $"silently share it); change {setting}={port}.";
            }
        }

        return null;
    }

    /// <summary>
    /// Where the silo will listen (as <see cref="SiloHostingExtensions.AddMqttSilo"/> configures it): loopback with
    /// localhost clustering, else the advertised address when it is a loopback one (several silos of one machine on
    /// 127.0.0.x share port numbers), else every address.
    /// </summary>
    private static IPAddress ListenAddress(IConfiguration configuration)
    {
        // A bad provider is reported by the silo's own configuration, with its setting.
        var provider = configuration[ClusteringProviderSetting.Key];
        if (string.IsNullOrEmpty(provider) || provider.Equals(nameof(ClusteringProvider.Localhost), StringComparison.OrdinalIgnoreCase)
            || configuration["Orleans:AdvertisedIPAddress"] is not { Length: > 0 } text)
        {
            return IPAddress.Loopback;
        }

        return IPAddress.TryParse(text, out var advertised) && IPAddress.IsLoopback(advertised) ? advertised : IPAddress.Any;
    }

    private static bool IsHeld(IPAddress address, int port)
    {
        using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (OperatingSystem.IsLinux())
        {
            socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
        }

        try
        {
            // A listener on the wildcard address conflicts with this one too.
            socket.Bind(new IPEndPoint(address, port));
            return false;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            return true;
        }
    }
}
