using System.Collections.Concurrent;
using System.Diagnostics;

namespace Orleans.Mqtt.Testing;

/// <summary>
/// A real etcd cluster of several members (the Debian <c>etcd-server</c> binary), each on its own free loopback ports
/// and temporary data directory; a member can be killed with SIGKILL to see what its clients do.
/// </summary>
public sealed class EtcdCluster : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly Member[] _members;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "orleans-mqtt-etcd-cluster-" + Guid.NewGuid().ToString("N"));

    private EtcdCluster(int size)
    {
        _members = new Member[size];
        for (var i = 0; i < size; i++)
        {
            _members[i] = new Member($"m{i}", $"http://127.0.0.1:{LoopbackPorts.Next()}", $"http://127.0.0.1:{LoopbackPorts.Next()}");
        }
    }

    /// <summary>Every member's client URL, comma-separated: the connection string of a client that may use any.</summary>
    public string ConnectionString => string.Join(',', _members.Select(m => m.ClientUrl));

    /// <summary>The members' client URLs, in member order.</summary>
    public IReadOnlyList<string> ClientUrls => [.. _members.Select(m => m.ClientUrl)];

    /// <summary>Starts <paramref name="size"/> members and returns once every one reports healthy (a leader is elected).</summary>
    public static async Task<EtcdCluster> StartAsync(int size = 3)
    {
        var binary = File.Exists("/usr/bin/etcd") ? "/usr/bin/etcd" : "etcd";
        var cluster = new EtcdCluster(size);
        try
        {
            var initialCluster = string.Join(',', cluster._members.Select(m => $"{m.Name}={m.PeerUrl}"));
            var ready = cluster._members.Select(m => m.Start(binary, Path.Combine(cluster._directory, m.Name), initialCluster)).ToArray();
            await Task.WhenAll(ready).WaitAsync(StartTimeout);
            await Task.WhenAll(cluster._members.Select(m => m.WaitHealthyAsync()));
            return cluster;
        }
        catch (Exception e)
        {
            var output = string.Join('\n', cluster._members.Select(m => m.Output()));
            await cluster.DisposeAsync();
            throw new InvalidOperationException($"the etcd cluster did not start: {e.Message}\n{output}", e);
        }
    }

    /// <summary>Kills member <paramref name="index"/> with SIGKILL and waits for it to exit.</summary>
    public Task KillAsync(int index) => _members[index].KillAsync();

    public async ValueTask DisposeAsync()
    {
        foreach (var member in _members)
        {
            await member.KillAsync();
        }

        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private sealed class Member(string name, string clientUrl, string peerUrl)
    {
        private readonly ConcurrentQueue<string> _output = new();
        private Process? _process;

        public string Name => name;

        public string ClientUrl => clientUrl;

        public string PeerUrl => peerUrl;

        public Task Start(string binary, string dataDirectory, string initialCluster)
        {
            var start = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var arg in new[]
            {
                "--name", name, "--data-dir", dataDirectory,
                "--listen-client-urls", clientUrl, "--advertise-client-urls", clientUrl,
                "--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls", peerUrl,
                "--initial-cluster", initialCluster, "--initial-cluster-state", "new",
            })
            {
                start.ArgumentList.Add(arg);
            }

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
            process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException($"etcd member {name} exited during start"));
            if (!process.Start())
            {
                throw new InvalidOperationException($"could not start {binary}");
            }

            _process = process;
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return ready.Task;
        }

        public async Task WaitHealthyAsync()
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var deadline = DateTime.UtcNow + StartTimeout;
            while (true)
            {
                try
                {
                    if ((await http.GetStringAsync(clientUrl + "/health")).Contains("\"health\":\"true\"", StringComparison.Ordinal))
                    {
                        return;
                    }
                }
                catch (HttpRequestException) when (DateTime.UtcNow < deadline)
                {
                }

                if (DateTime.UtcNow >= deadline)
                {
                    throw new TimeoutException($"etcd member {name} at {clientUrl} did not report healthy within {StartTimeout}");
                }

                // etcd offers no push signal for health: polled.
                await Task.Delay(TimeSpan.FromMilliseconds(100));
            }
        }

        public async Task KillAsync()
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
        }

        public string Output() => $"--- {name}:\n" + string.Join('\n', _output.TakeLast(20));
    }
}
