using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Orleans.Mqtt.Testing;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A real cluster on loopback, shared by a test collection: one etcd (membership and session ownership), three silo
/// processes and two gateway processes, each gateway with its own MQTT/TCP and HTTP port (WebSocket off). Members can
/// be killed with SIGKILL, restarted on the same ports and data directory, or added, for failure tests. Every gateway
/// reads the same ACL file (<see cref="AclFile"/>), which allows everything unless a test changes it, and the same
/// admin API key file (<see cref="ApiKeysFile"/>), which holds <see cref="AdminApiKey"/> under the name
/// <see cref="AdminApiKeyName"/>. Tracing is on in every member, sampling only <see cref="TracedClientId"/>,
/// <see cref="TracedTopicFilter"/> and sampled incoming contexts, each member writing its spans to
/// <see cref="SpansFileName"/> in its working directory.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);
    private readonly EtcdServer _etcd = new();
    private readonly List<ClusterMember> _silos = [];
    private readonly List<ClusterMember> _gateways = [];
    private readonly string _directory = BrokerProcess.TempDirectory();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ConcurrentQueue<string> _startup = new();
    private readonly Lock _lock = new();
    private readonly TimeSpan _sysInterval;
    private int _siloNumbers;
    private int _gatewayNumbers;

    /// <summary>A cluster that publishes its <c>$SYS</c> topics every second, so that tests see a change within a couple.</summary>
    public ClusterFixture()
        : this(TimeSpan.FromSeconds(1))
    {
    }

    /// <summary>A cluster that publishes its <c>$SYS</c> topics every <paramref name="sysInterval"/> (<c>Mqtt:SysInterval</c>).</summary>
    internal ClusterFixture(TimeSpan sysInterval) => _sysInterval = sysInterval;

    /// <summary>The ACL file every gateway is given (<c>Mqtt:AclFile</c>): <see cref="AllowAllRules"/> at start.</summary>
    public const string AllowAllRules = "pattern readwrite #\npattern readwrite $SYS/#\n";

    /// <summary>
    /// The build members start from unless told otherwise (<see cref="AddGatewayAsync(string?)"/>,
    /// <see cref="ReplaceAsync"/>): a directory holding a published silo in <c>silo/</c> and a published gateway in
    /// <c>gateway/</c>, as <c>bench/rolling-upgrade.sh</c> makes of another commit. Null (the default): this checkout's build.
    /// </summary>
    public string? Build { get; init; }

    /// <summary>The path of the ACL file all gateways read (each watches it, as each pod would watch one ConfigMap).</summary>
    public string AclFile => Path.Combine(_directory, "acl");

    /// <summary>The admin API key file every gateway is given (<c>Http:ApiKeysFile</c>), written by <c>api-key add</c>.</summary>
    public string ApiKeysFile => Path.Combine(_directory, "api-keys");

    /// <summary>The name of the one key in <see cref="ApiKeysFile"/>, as the gateways' audit lines name it.</summary>
    public const string AdminApiKeyName = "e2e";

    /// <summary>The key whose hash <see cref="ApiKeysFile"/> holds (set when the fixture starts).</summary>
    public string AdminApiKey { get; private set; } = string.Empty;

    /// <summary>The Orleans cluster id (and service id) every member runs with.</summary>
    public string ClusterId { get; } = "e2e-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>etcd's client URL (e.g. <c>http://127.0.0.1:43210</c>), for reading membership and ownership keys directly.</summary>
    public string EtcdClientUrl => _etcd.ClientUrl;

    /// <summary>The silos, <c>silo1</c>, <c>silo2</c>, … (three at start; killed ones stay listed).</summary>
    public IReadOnlyList<ClusterMember> Silos
    {
        get
        {
            lock (_lock)
            {
                return [.. _silos];
            }
        }
    }

    /// <summary>The gateways, <c>gateway1</c> ("A"), <c>gateway2</c> ("B"), … (two at start; killed ones stay listed).</summary>
    public IReadOnlyList<ClusterMember> Gateways
    {
        get
        {
            lock (_lock)
            {
                return [.. _gateways];
            }
        }
    }

    /// <summary>MQTT/TCP port of the first gateway ("gateway A").</summary>
    public int GatewayAMqttPort => Gateways[0].MqttPort;

    /// <summary>MQTT/TCP port of the second gateway ("gateway B").</summary>
    public int GatewayBMqttPort => Gateways[1].MqttPort;

    /// <summary>
    /// How the start went: when etcd was up and each member had started (silo) or was ready (gateway), in seconds from
    /// the creation of the fixture (members added or restarted later are appended).
    /// </summary>
    public string StartupReport => string.Join(", ", _startup);

    public async Task InitializeAsync()
    {
        try
        {
            Directory.CreateDirectory(_directory);
            await File.WriteAllTextAsync(AclFile, AllowAllRules);
            AdminApiKey = await ApiKeyTool.AddKeyAsync(ApiKeysFile, AdminApiKeyName);
            await _etcd.InitializeAsync();
            _startup.Enqueue($"etcd {_clock.Elapsed.TotalSeconds:F1} s");

            // One silo first, so that the others join a cluster that exists instead of racing to form it; then the
            // other two silos and both gateways (which need one silo to connect to) at once.
            await AddSiloAsync();
            await Task.WhenAll(AddSiloAsync(), AddSiloAsync(), AddGatewayAsync(), AddGatewayAsync());
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var member in Gateways.Concat(Silos))
        {
            await member.Process.DisposeAsync();
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

    /// <summary>Starts one more silo on fresh ports with an empty data directory; returns once its <c>/health/ready</c> answers 200.</summary>
    public Task<ClusterMember> AddSiloAsync() => AddAsync(gateway: false);

    /// <summary>Starts one more gateway on fresh ports; returns once its <c>/health/ready</c> answers 200.</summary>
    public Task<ClusterMember> AddGatewayAsync() => AddAsync(gateway: true);

    /// <summary>
    /// Starts one more gateway on fresh ports from <paramref name="build"/> (see <see cref="Build"/>; null: this
    /// checkout's), as a rolling update of the gateways' Deployment starts its extra pod; returns once it is ready.
    /// </summary>
    public Task<ClusterMember> AddGatewayAsync(string? build) => AddAsync(gateway: true, build);

    /// <summary>SIGKILL to the member's process (and its children): no shutdown code runs, no DISCONNECT is sent.</summary>
    public async Task KillAsync(ClusterMember member)
    {
        if (!member.Process.HasExited)
        {
            await member.Process.KillAsync();
        }
    }

    /// <summary>SIGTERM to the member's process: it shuts down gracefully (a silo hands its sessions over first).</summary>
    public Task StopAsync(ClusterMember member) => member.Process.TerminateAsync(TimeSpan.FromSeconds(60));

    /// <summary>
    /// Replaces a running member with a process of <paramref name="build"/> (see <see cref="Build"/>; null: this
    /// checkout's) as Kubernetes replaces a pod of a StatefulSet: SIGTERM, the process shuts down gracefully, then the
    /// new one starts under the same name, on the same ports and data directory; returns once it is ready (a silo:
    /// active in the membership with its replica complete).
    /// </summary>
    public async Task ReplaceAsync(ClusterMember member, string? build)
    {
        await StopAsync(member);
        await SaveLogAsync(member);
        await member.Process.DisposeAsync();
        member.Build = build;
        await StartAsync(member);
        _startup.Enqueue($"{member.Name} replaced {_clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>
    /// Starts a new process for a member that was killed or exited, on the same ports and (for a silo) the same data
    /// directory; returns once its <c>/health/ready</c> answers 200.
    /// </summary>
    public async Task RestartAsync(ClusterMember member)
    {
        if (!member.Process.HasExited)
        {
            throw new InvalidOperationException($"{member.Name} is still running; kill it first.");
        }

        await SaveLogAsync(member);
        await member.Process.DisposeAsync();
        await StartAsync(member);
        _startup.Enqueue($"{member.Name} restarted {_clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>
    /// A directory that keeps every member's whole output (<c>siloN.log</c>, <c>gatewayN.log</c>, each process of a
    /// restarted member after the one before): written when a member is restarted and by <see cref="SaveLogsAsync"/>.
    /// Null (the default): nothing is written.
    /// </summary>
    public string? LogDirectory { get; set; }

    /// <summary>Appends the output of every member's current process to <see cref="LogDirectory"/>, if set.</summary>
    public async Task SaveLogsAsync()
    {
        foreach (var member in Silos.Concat(Gateways))
        {
            await SaveLogAsync(member);
        }
    }

    private async Task SaveLogAsync(ClusterMember member)
    {
        if (LogDirectory is { } directory)
        {
            Directory.CreateDirectory(directory);
            await File.AppendAllLinesAsync(Path.Combine(directory, member.Name + ".log"), [$"--- {member.Name} process ---", .. member.Process.Lines]);
        }
    }

    /// <summary>The last lines of every process, labelled, for assertion messages.</summary>
    public string Logs(int linesPerProcess = 30)
    {
        var text = new StringBuilder();
        foreach (var member in Silos.Concat(Gateways))
        {
            var state = member.Process.HasExited ? $"exited {member.Process.ExitCode}" : "running";
            text.Append("--- ").Append(member.Name).Append(" (").Append(state).AppendLine(") ---");
            foreach (var line in member.Process.Lines.TakeLast(linesPerProcess))
            {
                text.AppendLine(line);
            }
        }

        return text.ToString();
    }

    private Task<ClusterMember> AddAsync(bool gateway) => AddAsync(gateway, Build);

    private async Task<ClusterMember> AddAsync(bool gateway, string? build)
    {
        for (var attempt = 1; ; attempt++)
        {
            var member = gateway ? NewGateway() : NewSilo();
            member.Build = build;
            try
            {
                await StartAsync(member);
                _startup.Enqueue($"{member.Name} {_clock.Elapsed.TotalSeconds:F1} s");
                lock (_lock)
                {
                    var members = gateway ? _gateways : _silos;
                    members.Insert(members.Count(m => m.Number < member.Number), member);
                }

                return member;
            }
            catch (Exception e) when (member.Process is not null)
            {
                await member.Process.DisposeAsync();

                // A port that was free when picked can be taken before the process binds it: new ports, new try.
                if (attempt >= 3 || e is not InvalidOperationException || !member.Process.Lines.Any(IsPortTaken))
                {
                    throw;
                }
            }
        }
    }

    private ClusterMember NewSilo()
    {
        var number = Interlocked.Increment(ref _siloNumbers);
        var data = Path.Combine(_directory, $"silo{number}");
        var siloPort = LoopbackPorts.Next();
        var gatewayPort = LoopbackPorts.Next();
        var httpPort = LoopbackPorts.Next();
        var environment = Common();
        environment["Tracing__FilePath"] = Path.Combine(data, SpansFileName);
        environment["Orleans__SiloPort"] = siloPort.ToString();
        environment["Orleans__GatewayPort"] = gatewayPort.ToString();
        environment["Http__Port"] = httpPort.ToString();
        environment["Storage__DataDirectory"] = Path.Combine(data, "data");
        return new ClusterMember($"silo{number}", number, isGateway: false, environment, data)
        {
            SiloPort = siloPort,
            OrleansGatewayPort = gatewayPort,
            HttpPort = httpPort,
        };
    }

    private ClusterMember NewGateway()
    {
        var number = Interlocked.Increment(ref _gatewayNumbers);
        var mqttPort = LoopbackPorts.Next();
        var httpPort = LoopbackPorts.Next();
        var environment = Common();
        environment["Tracing__FilePath"] = Path.Combine(_directory, $"gateway{number}", SpansFileName);
        environment["Mqtt__Tcp__Port"] = mqttPort.ToString();
        environment["Mqtt__WebSocket__Port"] = "0";
        environment["Http__Port"] = httpPort.ToString();
        var gatewayId = $"gateway{number}-{ClusterId}";
        environment["Mqtt__GatewayId"] = gatewayId;
        environment["Mqtt__HeartbeatInterval"] = "00:00:00.500";
        environment["Mqtt__AclFile"] = AclFile;
        environment["Mqtt__Acl__ReloadCheckInterval"] = "00:00:01";
        environment["Http__ApiKeysFile"] = ApiKeysFile;

        // Orleans binds GatewayOptions from Orleans:Gateway: a short refresh lets a gateway started while silos join
        // (or after one died) see the current silo list within a second instead of a minute.
        environment["Orleans__Gateway__GatewayListRefreshPeriod"] = "00:00:01";
        return new ClusterMember($"gateway{number}", number, isGateway: true, environment, Path.Combine(_directory, $"gateway{number}"))
        {
            MqttPort = mqttPort,
            HttpPort = httpPort,
            GatewayId = gatewayId,
        };
    }

    private Dictionary<string, string> Common() => new()
    {
        ["DOTNET_ENVIRONMENT"] = "Production",
        ["Clustering__Provider"] = "Etcd",
        ["Clustering__Etcd__ConnectionString"] = _etcd.ClientUrl,
        ["Orleans__ClusterId"] = ClusterId,

        // Silos run the shipped failure detection (a killed silo is declared dead in about 3 s); a silent gateway is
        // declared dead after 3 s rather than the default 10 s.
        ["Mqtt__GatewayTimeout"] = "00:00:03",

        // Tracing on, as in production with a small ratio: nothing is sampled but what TracingTests marks (its client
        // id, its topics, a sampled traceparent), so every other test runs with tracing on and unsampled.
        ["Tracing__Enabled"] = "true",
        ["Tracing__SamplingRatio"] = "0",
        ["Tracing__AlwaysSampleClientIds__0"] = TracedClientId,
        ["Tracing__AlwaysSampleTopicFilters__0"] = TracedTopicFilter,
        ["Tracing__Propagation"] = "Replace",
        ["Mqtt__SysInterval"] = _sysInterval.ToString("c", CultureInfo.InvariantCulture),

        // Log times in UTC, as the clients' timeline and the kills are noted: ChaosRun reads from the silos' lines when
        // they saw a killed silo declared dead, and the saved logs line up with clients.log on any machine's time zone.
        ["Logging__Console__FormatterOptions__UseUtcTimestamp"] = "true",
    };

    /// <summary>The name of the JSON-lines file each member writes its spans to (<c>Tracing:FilePath</c>), in its working directory.</summary>
    public const string SpansFileName = "spans.jsonl";

    /// <summary>A client id every member always traces (<c>Tracing:AlwaysSampleClientIds</c>).</summary>
    public const string TracedClientId = "traced-client";

    /// <summary>A topic filter every member always traces (<c>Tracing:AlwaysSampleTopicFilters</c>).</summary>
    public const string TracedTopicFilter = "traced/#";

    private static async Task StartAsync(ClusterMember member)
    {
        Directory.CreateDirectory(member.WorkingDirectory);
        var dll = member.Build is { } build
            ? Path.Combine(build, member.IsGateway ? "gateway" : "silo", Path.GetFileName(member.IsGateway ? Paths.GatewayDll : Paths.SiloDll))
            : member.IsGateway ? Paths.GatewayDll : Paths.SiloDll;
        member.Process = CliProcess.Start("dotnet", [dll], member.Environment, member.WorkingDirectory);

        // A gateway is ready once it accepts MQTT with a silo behind it; a silo once it is active in the membership
        // and its route replica is complete.
        await WaitReadyAsync(member);
    }

    private static async Task WaitReadyAsync(ClusterMember member)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + StartTimeout;
        while (true)
        {
            if (member.Process.HasExited)
            {
                // The output (an unhandled exception's stack on stderr, say) may still be draining.
                await member.Process.WaitForExitAsync(TimeSpan.FromSeconds(5));
                throw new InvalidOperationException($"{member.Name} exited ({member.Process.ExitCode}):\n" + string.Join('\n', member.Process.Lines.TakeLast(40)));
            }

            try
            {
                using var response = await http.GetAsync($"http://127.0.0.1:{member.HttpPort}/health/ready");
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

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{member.Name} not ready:\n" + string.Join('\n', member.Process.Lines.TakeLast(40)));
            }

            // Readiness is polled: the gateway offers no push signal before its HTTP endpoint is up.
            await Task.Delay(100);
        }
    }

    private static bool IsPortTaken(string line) => line.Contains("address already in use", StringComparison.OrdinalIgnoreCase);
}

/// <summary>One silo or gateway of a <see cref="ClusterFixture"/>: its settings, ports and current process.</summary>
public sealed class ClusterMember
{
    internal ClusterMember(string name, int number, bool isGateway, IReadOnlyDictionary<string, string> environment, string workingDirectory)
    {
        Name = name;
        Number = number;
        IsGateway = isGateway;
        Environment = environment;
        WorkingDirectory = workingDirectory;
    }

    /// <summary><c>siloN</c> or <c>gatewayN</c>, for logs and messages.</summary>
    public string Name { get; }

    public bool IsGateway { get; }

    internal int Number { get; }

    /// <summary>MQTT/TCP port (gateways).</summary>
    public int MqttPort { get; init; }

    /// <summary>HTTP port for health and metrics.</summary>
    public int HttpPort { get; init; }

    /// <summary>A gateway's id (<c>Mqtt:GatewayId</c>), as ownership records and logs name it.</summary>
    public string GatewayId { get; init; } = string.Empty;

    /// <summary>Orleans silo-to-silo port (silos).</summary>
    public int SiloPort { get; init; }

    /// <summary>Orleans client gateway port (silos).</summary>
    public int OrleansGatewayPort { get; init; }

    /// <summary>The environment the process runs with (its whole configuration beyond appsettings.json).</summary>
    public IReadOnlyDictionary<string, string> Environment { get; }

    /// <summary>The build the current process runs (see <see cref="ClusterFixture.Build"/>); null: this checkout's.</summary>
    public string? Build { get; internal set; }

    /// <summary>Working directory; a silo's data directory is below it.</summary>
    public string WorkingDirectory { get; }

    /// <summary>The current process, with its output captured line by line.</summary>
    public CliProcess Process { get; internal set; } = null!;

    public bool HasExited => Process.HasExited;

    /// <summary>Every line the current process wrote so far.</summary>
    public IReadOnlyCollection<string> Lines => Process.Lines;
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}
