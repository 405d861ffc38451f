using System.Collections.Concurrent;
using System.Diagnostics;

namespace Orleans.Mqtt.Testing;

/// <summary>
/// A real single-member etcd (the Debian <c>etcd-server</c> binary) on free loopback ports with a temporary data
/// directory, started once for a test class and killed after it (as an xunit fixture, see EtcdServerLifetime.cs),
/// or by a measurement program that calls <see cref="InitializeAsync"/> itself.
/// </summary>
public sealed partial class EtcdServer : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly ConcurrentQueue<string> _output = new();
    private Process? _process;
    private string? _dataDirectory;

    /// <summary>The client URL, e.g. <c>http://127.0.0.1:43210</c>.</summary>
    public string ClientUrl { get; private set; } = string.Empty;

    /// <summary>The etcd process's id while it runs (0 before it starts), for measurements of its memory.</summary>
    public int ProcessId => _process?.Id ?? 0;

    public async Task InitializeAsync()
    {
        var binary = File.Exists("/usr/bin/etcd") ? "/usr/bin/etcd" : "etcd";
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await StartAsync(binary);
                return;
            }
            catch (EtcdExitedException) when (attempt < 3)
            {
                // A port that was free when picked can be taken before etcd binds it: new ports, new try.
                await DisposeAsync();
            }
        }
    }

    ValueTask IAsyncDisposable.DisposeAsync() => new(DisposeAsync());

    public async Task DisposeAsync()
    {
        if (_process is { } process)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }

            process.Dispose();
            _process = null;
        }

        if (_dataDirectory is not null && Directory.Exists(_dataDirectory))
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }

    private async Task StartAsync(string binary)
    {
        _dataDirectory = Path.Combine(Path.GetTempPath(), "orleans-mqtt-etcd-" + Guid.NewGuid().ToString("N"));
        var clientUrl = $"http://127.0.0.1:{LoopbackPorts.Next()}";
        var peerUrl = $"http://127.0.0.1:{LoopbackPorts.Next()}";
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            "--name", "t", "--data-dir", _dataDirectory,
            "--listen-client-urls", clientUrl, "--advertise-client-urls", clientUrl,
            "--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls", peerUrl,
            "--initial-cluster", "t=" + peerUrl,
        })
        {
            start.ArgumentList.Add(arg);
        }

        // etcd logs "ready to serve client requests" once it has a leader and its client listener is up.
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        DataReceivedEventHandler onLine = (_, e) =>
        {
            if (e.Data is { } line)
            {
                _output.Enqueue(line);
                if (line.Contains("ready to serve client requests", StringComparison.Ordinal))
                {
                    ready.TrySetResult();
                }
            }
        };
        process.OutputDataReceived += onLine;
        process.ErrorDataReceived += onLine;
        process.Exited += (_, _) => ready.TrySetException(new EtcdExitedException(Output()));
        if (!process.Start())
        {
            throw new InvalidOperationException($"could not start {binary}");
        }

        _process = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await ready.Task.WaitAsync(StartTimeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"etcd did not become ready within {StartTimeout}:\n{Output()}");
        }

        await WaitHealthyAsync(clientUrl);
        ClientUrl = clientUrl;
    }

    private async Task WaitHealthyAsync(string clientUrl)
    {
        // The log line says the listener is up; the health endpoint confirms the member answers reads.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + StartTimeout;
        while (true)
        {
            try
            {
                var body = await http.GetStringAsync(clientUrl + "/health");
                if (body.Contains("\"health\":\"true\"", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"etcd at {clientUrl} did not report healthy within {StartTimeout}:\n{Output()}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }
    }

    private string Output() => string.Join('\n', _output.TakeLast(40));

    private sealed class EtcdExitedException(string output) : Exception($"etcd exited during start:\n{output}");
}
