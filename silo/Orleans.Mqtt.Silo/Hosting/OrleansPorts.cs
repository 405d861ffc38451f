using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Orleans.Configuration;

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
        foreach (var (setting, port) in ports)
        {
            if (port is > 0 and <= IPEndPoint.MaxPort && IsHeld(port))
            {
                return $"Startup failed: port {port}: address already in use. Another process listens on that port (a second silo there would "
                    + $"silently share it); change {setting}={port}.";
            }
        }

        return null;
    }

    private static bool IsHeld(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        if (OperatingSystem.IsLinux())
        {
            socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
        }

        try
        {
            // The wildcard address conflicts with a listener on any one address of the machine.
            socket.Bind(new IPEndPoint(IPAddress.Any, port));
            return false;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            return true;
        }
    }
}
