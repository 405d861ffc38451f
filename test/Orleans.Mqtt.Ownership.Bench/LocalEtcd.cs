using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Orleans.Mqtt.Ownership.Bench;

/// <summary>A throwaway single-member etcd on free loopback ports with a temporary data directory.</summary>
internal sealed class LocalEtcd : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dataDirectory;

    private LocalEtcd(Process process, string dataDirectory, string clientUrl)
    {
        _process = process;
        _dataDirectory = dataDirectory;
        ClientUrl = clientUrl;
    }

    public string ClientUrl { get; }

    public static async Task<LocalEtcd> StartAsync()
    {
        var dataDirectory = Path.Combine(Path.GetTempPath(), "orleans-mqtt-bench-etcd-" + Guid.NewGuid().ToString("N"));
        var clientUrl = $"http://127.0.0.1:{FreePort()}";
        var peerUrl = $"http://127.0.0.1:{FreePort()}";
        var start = new ProcessStartInfo(File.Exists("/usr/bin/etcd") ? "/usr/bin/etcd" : "etcd")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[]
        {
            "--name", "bench", "--data-dir", dataDirectory,
            "--listen-client-urls", clientUrl, "--advertise-client-urls", clientUrl,
            "--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls", peerUrl,
            "--initial-cluster", "bench=" + peerUrl,
        })
        {
            start.ArgumentList.Add(arg);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start etcd");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var etcd = new LocalEtcd(process, dataDirectory, clientUrl);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if ((await http.GetStringAsync(clientUrl + "/health")).Contains("\"health\":\"true\"", StringComparison.Ordinal))
                {
                    return etcd;
                }
            }
            catch (HttpRequestException) when (deadline.Elapsed < TimeSpan.FromSeconds(30) && !process.HasExited)
            {
            }

            if (deadline.Elapsed >= TimeSpan.FromSeconds(30) || process.HasExited)
            {
                await etcd.DisposeAsync();
                throw new TimeoutException($"etcd at {clientUrl} did not become healthy");
            }

            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        if (Directory.Exists(_dataDirectory))
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
