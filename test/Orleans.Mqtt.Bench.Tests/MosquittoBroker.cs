using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Orleans.Mqtt.Testing;

namespace Orleans.Mqtt.Bench.Tests;

/// <summary>Debian's mosquitto on a free loopback port, persistence off, 10,000 queued messages per client (as bench/compare.sh); stopped on dispose.</summary>
public sealed class MosquittoBroker : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;

    private MosquittoBroker(Process process, string directory, int port)
    {
        _process = process;
        _directory = directory;
        Port = port;
    }

    /// <summary>The MQTT port it listens on.</summary>
    public int Port { get; }

    /// <summary>Its process id.</summary>
    public int ProcessId => _process.Id;

    /// <summary>Starts mosquitto; fails with a message naming the package when the binary is missing.</summary>
    public static async Task<MosquittoBroker> StartAsync()
    {
        var binary = FindBinary() ?? throw new InvalidOperationException(
            "mosquitto is not installed: these tests run the load tool against Debian's mosquitto broker (apt-get install -y mosquitto, or ./test.sh)");
        for (var attempt = 0; ; attempt++)
        {
            var port = LoopbackPorts.Next();
            var directory = Directory.CreateTempSubdirectory("bench-mosquitto-").FullName;
            var config = Path.Combine(directory, "mosquitto.conf");
            await File.WriteAllTextAsync(config, $"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 10000\n");
            var start = new ProcessStartInfo(binary, ["-c", config]) { RedirectStandardError = true, RedirectStandardOutput = true };
            var process = Process.Start(start)!;
            _ = process.StandardError.ReadToEndAsync();
            _ = process.StandardOutput.ReadToEndAsync();
            if (await WaitForListenerAsync(port, process, TimeSpan.FromSeconds(10)))
            {
                return new MosquittoBroker(process, directory, port);
            }

            // The port was taken between choosing and binding it: try another.
            process.Kill();
            await process.WaitForExitAsync();
            process.Dispose();
            Directory.Delete(directory, recursive: true);
            if (attempt == 3)
            {
                throw new InvalidOperationException($"mosquitto did not listen on 127.0.0.1:{port}");
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private static string? FindBinary()
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/sbin"))
        {
            var candidate = Path.Combine(directory, "mosquitto");
            if (directory.Length > 0 && File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static async Task<bool> WaitForListenerAsync(int port, Process process, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline && !process.HasExited)
        {
            using var client = new TcpClient();
            try
            {
                await client.ConnectAsync(IPAddress.Loopback, port);
                return true;
            }
            catch (SocketException)
            {
                // Not listening yet: the next attempt is the signal.
                await Task.Yield();
            }
        }

        return false;
    }
}
