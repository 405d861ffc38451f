using System.Net;
using System.Net.Sockets;

namespace Orleans.Mqtt.Testing;

/// <summary>
/// Free TCP ports on 127.0.0.1 for the servers the tests start. A port from <c>bind(0)</c> lies in the kernel's
/// ephemeral range, where any outgoing connection made before the server binds it may take it as its source port
/// (the server then fails to start with "address in use"). These ports come from below that range, so only
/// another listener can take them, and each is handed out once per test process.
/// </summary>
public static class LoopbackPorts
{
    private const int Lowest = 10_000;
    private static readonly (int First, int Count) Range = ChooseRange();
    private static int _next = Random.Shared.Next(Range.Count);

    /// <summary>A port no listener holds now and that this process has not handed out before.</summary>
    public static int Next()
    {
        for (var attempt = 0; attempt < Range.Count; attempt++)
        {
            var port = Range.First + (int)((uint)Interlocked.Increment(ref _next) % (uint)Range.Count);
            if (IsFree(port))
            {
                return port;
            }
        }

        throw new InvalidOperationException($"no free loopback port in {Range.First}–{Range.First + Range.Count - 1}");
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    // Below the ephemeral range when there is room (Linux default 32768–60999), else above it, else anywhere.
    private static (int First, int Count) ChooseRange()
    {
        var (low, high) = (32_768, 60_999);
        try
        {
            var parts = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range")
                .Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            (low, high) = (int.Parse(parts[0]), int.Parse(parts[1]));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            // Not Linux, or unreadable: assume the default range.
        }

        return low - Lowest >= 2_000 ? (Lowest, low - Lowest)
            : 65_535 - high >= 2_000 ? (high + 1, 65_535 - high)
            : (1_024, 65_535 - 1_024 + 1);
    }
}
