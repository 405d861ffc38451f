using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Orleans.Mqtt.Testing;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>The real standalone broker, started as its own process on free loopback ports.</summary>
public sealed partial class BrokerProcess : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _output = new();
    private readonly Dictionary<string, string> _settings;
    private Process? _process;
    private TaskCompletionSource _outputChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private readonly int _fileLimit;

    private BrokerProcess(string dataDirectory, Dictionary<string, string> settings, int fileLimit)
    {
        DataDirectory = dataDirectory;
        _settings = settings;
        _fileLimit = fileLimit;
        MqttPort = LoopbackPorts.Next();
        WebSocketPort = LoopbackPorts.Next();
        HttpPort = LoopbackPorts.Next();
        TlsPort = LoopbackPorts.Next();
        SiloPort = LoopbackPorts.Next();
        OrleansGatewayPort = LoopbackPorts.Next();
    }

    public string DataDirectory { get; }

    public int MqttPort { get; }

    public int WebSocketPort { get; }

    public int HttpPort { get; }

    public int TlsPort { get; }

    private int SiloPort { get; }

    private int OrleansGatewayPort { get; }

    /// <summary>Lines the broker wrote so far.</summary>
    public IReadOnlyCollection<string> Output => _output;

    /// <summary>
    /// Starts the broker with <paramref name="settings"/> (environment variables); with a <paramref name="fileLimit"/>
    /// above 0, under that open-file limit, soft and hard (<c>prlimit --nofile</c>).
    /// </summary>
    public static async Task<BrokerProcess> StartAsync(Dictionary<string, string>? settings = null, string? dataDirectory = null, int fileLimit = 0)
    {
        for (var attempt = 1; ; attempt++)
        {
            var broker = new BrokerProcess(dataDirectory ?? TempDirectory(), settings ?? [], fileLimit);
            try
            {
                await broker.StartProcessAsync();
                return broker;
            }
            catch (PortTakenException) when (attempt < 3)
            {
                // A port that was free when it was picked can be taken before the broker binds it (by an outgoing
                // connection of another test, which gets its port from the same ephemeral range): new ports, new try.
                if (dataDirectory is null)
                {
                    await broker.DisposeAsync();
                }
            }
        }
    }

    /// <summary>Starts the broker process again on the same ports and data directory (after a stop or a kill).</summary>
    public Task RestartAsync() => StartProcessAsync();

    /// <summary>SIGTERM, then waits for the process to exit.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } p)
        {
            _ = Kill(p.Id, 15);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await p.WaitForExitAsync(cts.Token);
        }
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill();
            await p.WaitForExitAsync();
        }
    }

    public int? ExitCode => _process is { HasExited: true } p ? p.ExitCode : null;

    public Task<string> GetMetricsAsync() => Metrics.ScrapeAsync(HttpPort);

    /// <summary>
    /// Reads a counter from /metrics: the sum of the series named <paramref name="name"/> whose labels include
    /// <paramref name="label"/> (e.g. <c>reason="invalid_topic"</c>), or 0 when there is none.
    /// </summary>
    public async Task<double> GetCounterAsync(string name, string? label = null) => Metrics.Sum(await GetMetricsAsync(), name, label);

    /// <summary>Waits until the broker writes a line matching <paramref name="predicate"/>.</summary>
    public async Task<string> WaitForOutputAsync(Func<string, bool> predicate, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            var changed = _outputChanged.Task;
            foreach (var line in _output)
            {
                if (predicate(line))
                {
                    return line;
                }
            }

            try
            {
                await changed.WaitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException("broker output never matched; last lines:\n" + string.Join('\n', _output.TakeLast(30)));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        catch (InvalidOperationException)
        {
        }

        _process?.Dispose();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public static string TempDirectory()
    {
        var path = Path.Combine(Path.GetTempPath(), "orleans-mqtt-e2e-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path);
        return path;
    }

    private async Task StartProcessAsync()
    {
        // prlimit sets the limit and then runs the broker in its own process (exec), so the process is still the broker's.
        var info = new ProcessStartInfo(
            _fileLimit > 0 ? "prlimit" : "dotnet",
            _fileLimit > 0 ? [$"--nofile={_fileLimit}:{_fileLimit}", "dotnet", Paths.StandaloneDll] : [Paths.StandaloneDll])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = DataDirectory,
        };
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.Environment["Mqtt__BindAddress"] = "127.0.0.1";
        info.Environment["Mqtt__Tcp__Port"] = MqttPort.ToString();
        info.Environment["Mqtt__WebSocket__Port"] = WebSocketPort.ToString();
        info.Environment["Mqtt__Tls__Port"] = TlsPort.ToString();
        info.Environment["Http__Port"] = HttpPort.ToString();
        info.Environment["Orleans__SiloPort"] = SiloPort.ToString();
        info.Environment["Orleans__GatewayPort"] = OrleansGatewayPort.ToString();
        info.Environment["Storage__DataDirectory"] = Path.Combine(DataDirectory, "data");
        info.Environment["Logging__LogLevel__Orleans.Mqtt"] = "Debug";
        foreach (var (key, value) in _settings)
        {
            info.Environment[key] = value;
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process?.Dispose();
        _process = process;
        await WaitReadyAsync(process);
    }

    private async Task WaitReadyAsync(Process process)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                var message = $"broker exited with {process.ExitCode}:\n" + string.Join('\n', _output.TakeLast(40));
                throw _output.Any(l => l.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
                    ? new PortTakenException(message)
                    : new InvalidOperationException(message);
            }

            try
            {
                using var response = await http.GetAsync($"http://127.0.0.1:{HttpPort}/health/ready");
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            // Readiness is polled: the broker offers no push signal before its HTTP endpoint is up.
            await Task.WhenAny(_outputChanged.Task, Task.Delay(100));
        }

        throw new TimeoutException("broker not ready:\n" + string.Join('\n', _output.TakeLast(40)));
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        _output.Enqueue(line);
        Interlocked.Exchange(ref _outputChanged, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    private sealed class PortTakenException(string message) : InvalidOperationException(message);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
