namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>Debian's mosquitto_sub / mosquitto_pub against a broker, with output that tests can parse.</summary>
public static class Mosquitto
{
    /// <summary>Every received message is printed as <c>MSG|qos|retain|topic|payload</c>.</summary>
    public const string MessageFormat = "MSG|%q|%r|%t|%p";

    /// <summary>Starts mosquitto_sub in debug mode (so SUBACK is visible) and waits for its SUBACK.</summary>
    public static async Task<CliProcess> SubscribeAsync(int port, string version, params string[] extra)
    {
        var sub = StartSubscriber(port, version, extra);
        try
        {
            await sub.WaitForLineAsync(l => l.Contains("received SUBACK", StringComparison.Ordinal));
            return sub;
        }
        catch
        {
            await sub.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts mosquitto_sub without waiting for its SUBACK (a resumed session may deliver before it).</summary>
    public static CliProcess StartSubscriber(int port, string version, params string[] extra)
    {
        // stdbuf: mosquitto_sub's output is block-buffered when it is not a terminal; line buffering lets the test
        // see SUBACK and each message as they happen.
        var args = new List<string> { "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", port.ToString(), "-V", version, "-d", "-F", MessageFormat };
        args.AddRange(extra);
        return CliProcess.Start("stdbuf", [.. args]);
    }

    public static async Task PublishAsync(int port, string version, params string[] extra)
    {
        var args = new List<string> { "-h", "127.0.0.1", "-p", port.ToString(), "-V", version };
        args.AddRange(extra);
        var (exit, output) = await CliProcess.RunAsync("mosquitto_pub", [.. args]);
        Assert.True(exit == 0, $"mosquitto_pub {string.Join(' ', extra)} failed ({exit}): {output}");
    }

    public static bool IsMessage(string line) => line.StartsWith("MSG|", StringComparison.Ordinal);

    /// <summary>Parses a <see cref="MessageFormat"/> line.</summary>
    public static (int Qos, bool Retain, string Topic, string Payload) Parse(string line)
    {
        var parts = line.Split('|', 5);
        return (int.Parse(parts[1]), parts[2] == "1", parts[3], parts[4]);
    }
}
