using System.Diagnostics;
using System.Text.Json;
using k8s.Models;
using Orleans.Mqtt.Testing;

namespace Orleans.Mqtt.Chart.Tests;

/// <summary>
/// The chart rendered with values that point at loopback (values/loopback is written here: ports, the data directory,
/// the etcd endpoint and the bind address are what must differ from a cluster), then its silo and gateway containers
/// run as processes of the published hosts (<see cref="Pod"/>): two silo pods started together as a Parallel
/// StatefulSet does, then two gateway pods. One etcd (etcd-server) stands in for the external one.
/// </summary>
public sealed class ChartCluster : IAsyncLifetime
{
    private readonly EtcdServer _etcd = new();
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "orleans-mqtt-chart-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly List<Pod> _silos = [];
    private readonly List<Pod> _gateways = [];

    public Manifests Manifests { get; private set; } = null!;

    public string ValuesFile => Path.Combine(_directory, "loopback.yaml");

    public string EtcdUrl => _etcd.ClientUrl;

    public IReadOnlyList<Pod> Silos => _silos;

    public IReadOnlyList<Pod> Gateways => _gateways;

    public V1StatefulSet SiloSet => Manifests.StatefulSet("silo");

    private string ImageRoot => Path.Combine(_directory, "app");

    public async Task InitializeAsync()
    {
        try
        {
            Directory.CreateDirectory(_directory);
            var etcd = _etcd.InitializeAsync();
            var publish = Task.WhenAll(
                PublishAsync("silo/Orleans.Mqtt.Silo", Path.Combine(ImageRoot, "silo")),
                PublishAsync("gateway/Orleans.Mqtt.Gateway", Path.Combine(ImageRoot, "gateway")));
            await etcd;
            await File.WriteAllTextAsync(ValuesFile, LoopbackValues());
            Manifests = Manifests.Parse(await Helm.TemplateAsync([ValuesFile]));
            await publish;

            // Parallel pod management: the silos start at once and form the cluster together.
            var silos = Enumerable.Range(0, SiloSet.Spec.Replicas ?? 1).Select(_ => StartSilo()).ToList();
            await Task.WhenAll(silos.Select(p => p.WaitReadyAsync()));
            var gateways = Enumerable.Range(0, Manifests.Gateways.Spec.Replicas ?? 1).Select(_ => StartGateway()).ToList();
            await Task.WhenAll(gateways.Select(p => p.WaitReadyAsync()));
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    /// <summary>One more silo pod, named as a StatefulSet scaled up names it; returns once it is ready.</summary>
    public async Task<Pod> ScaleUpSilosAsync()
    {
        var pod = StartSilo();
        await pod.WaitReadyAsync();
        return pod;
    }

    /// <summary>The last lines of every process, for assertion messages.</summary>
    public string Logs() => string.Concat(_silos.Concat(_gateways).Select(p => p.Log()));

    public async Task DisposeAsync()
    {
        foreach (var pod in _gateways.Concat(_silos))
        {
            await pod.DisposeAsync();
        }

        await _etcd.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private Pod StartSilo()
    {
        var ordinal = _silos.Count;
        var pod = Pod.Start($"{SiloSet.Metadata.Name}-{ordinal}", $"127.0.0.{11 + ordinal}", SiloSet.Spec.Template, Manifests, Path.Combine(ImageRoot), WorkingDirectory());
        _silos.Add(pod);
        return pod;
    }

    private Pod StartGateway()
    {
        var ordinal = _gateways.Count;
        var deployment = Manifests.Gateways;
        var pod = Pod.Start($"{deployment.Metadata.Name}-5d8f9c7b6-{(char)('a' + ordinal)}x{ordinal}q", $"127.0.0.{31 + ordinal}", deployment.Spec.Template, Manifests, ImageRoot, WorkingDirectory());
        _gateways.Add(pod);
        return pod;
    }

    private string WorkingDirectory()
    {
        // The container's working directory: nothing is written there (the root file system is read-only).
        var path = Path.Combine(_directory, "cwd");
        Directory.CreateDirectory(path);
        return path;
    }

    // Values for loopback. Every pod gets the same ports, as in a cluster; they differ by their pod IP (127.0.0.x), to
    // which they bind ("$(POD_IP)" instead of 0.0.0.0). Each silo's data directory is its own through $(POD_NAME),
    // as the volume of its own gives it in a cluster. Failure detection is shortened as in the end-to-end cluster.
    private string LoopbackValues() => JsonSerializer.Serialize(new
    {
        bindAddress = "$(POD_IP)",
        silo = new
        {
            replicas = 2,
            dataDirectory = Path.Combine(_directory, "volumes", "$(POD_NAME)"),
            ports = new { silo = LoopbackPorts.Next(), gateway = LoopbackPorts.Next(), http = LoopbackPorts.Next() },
            config = new Dictionary<string, object>
            {
                ["Membership:ProbeTimeout"] = "00:00:01",
                ["Membership:NumMissedProbesLimit"] = 2,
                ["Mqtt:GatewayTimeout"] = "00:00:03",
            },
        },
        gateway = new
        {
            replicas = 2,
            ports = new { mqtt = LoopbackPorts.Next(), tls = LoopbackPorts.Next(), websocket = LoopbackPorts.Next(), http = LoopbackPorts.Next() },
            config = new Dictionary<string, object> { ["Mqtt:HeartbeatInterval"] = "00:00:00.500" },
        },
        etcd = new { enabled = false, external = new { endpoints = new[] { _etcd.ClientUrl } } },
    });

    private static async Task PublishAsync(string project, string output)
    {
        var info = new ProcessStartInfo("dotnet", ["publish", Path.Combine(Helm.RepositoryRoot, project), "-c", Configuration, "--no-build", "--nologo", "-v", "q", "-o", output])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(info)!;
        var text = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(cts.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"dotnet publish {project} failed:\n{await text}{await error}");
        }
    }

    private static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";
}
