using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Serialization.TypeSystem;
using Orleans.Services;

namespace Orleans.Mqtt.Benchmarks;

/// <summary>
/// What Orleans alone costs for the shape of a connect with one subscription: a new grain per client id, activated by
/// its first call, and a second call, from a caller outside the grains (a gateway). No storage, no ownership, no
/// routes, no MQTT: the grain keeps a few fields and answers. Orleans' real transport (TCP on loopback) and its own
/// grain directory; placement by the grain id's hash (as a session is placed by its client's ranking). The silos run
/// in the caller's process, or each in a process of its own (<c>--processes</c>, the cluster's shape); the caller is
/// an external Orleans client, or the first silo's own grain factory (<c>--co-hosted</c>, the standalone broker's
/// shape). Reports CPU per operation (user + system time of every process over the operations), operations per
/// second, and the caller's process's bytes allocated and collections per operation; the same for two calls to grains
/// already active. So its CPU per operation is Orleans' floor under the broker's connect at that number of silos.
/// Then the same two calls to sessions kept many to one grain service per silo (<see cref="FloorSessionHost"/>),
/// addressed by the gateway address of the silo the client id's hash picks, so that Orleans' client sends them to that
/// silo directly: the floor of a design without an activation per client.
/// </summary>
public static class ActivationFloor
{
    private const int InFlight = 100;

    /// <summary>Runs the floor for each silo count, one fresh cluster each.</summary>
    /// <param name="output">Where the table goes.</param>
    /// <param name="siloCounts">Silo counts to run.</param>
    /// <param name="operations">New grains per measured pass.</param>
    /// <param name="coHosted">Call from the first silo's own grain factory (the standalone broker's gateway) instead of an external client.</param>
    /// <param name="processes">Run each silo in a process of its own (this program with <c>floor-silo</c>), the caller in this one.</param>
    public static async Task Report(TextWriter output, IReadOnlyList<int> siloCounts, int operations, bool coHosted, bool processes)
    {
        output.WriteLine($"caller: {(coHosted ? "the first silo's grain factory (co-hosted, as the standalone broker's gateway)" : "an external Orleans client (as a gateway process)")}; "
            + $"silos {(processes ? "each in a process of its own" : "in the caller's process")}; "
            + $"{operations:N0} operations per pass, {InFlight} in flight; {Environment.ProcessorCount} cores; "
            + $"TieredCompilation={Environment.GetEnvironmentVariable("DOTNET_TieredCompilation") ?? "(default)"}; "
            + $"placement {Environment.GetEnvironmentVariable("FLOOR_PLACEMENT") ?? "hash"}, directory {Environment.GetEnvironmentVariable("FLOOR_DIRECTORY") ?? "default"}");
        output.WriteLine("| silos | pass | ops/s | CPU µs per op, all processes | allocated KB per op (caller's process) | gen0 / gen1 / gen2 per 1,000 ops (caller's process) |");
        output.WriteLine("|---:|---|---:|---:|---:|---|");
        foreach (var silos in siloCounts)
        {
            await RunCluster(output, silos, operations, coHosted && !processes, processes);
        }
    }

    /// <summary>One silo of a <c>--processes</c> run: starts, says "ready", stops when its input closes.</summary>
    public static async Task RunSilo(int siloPort, int gatewayPort, int primaryPort)
    {
        using var host = BuildSilo(siloPort, gatewayPort, new IPEndPoint(IPAddress.Loopback, primaryPort));
        await host.StartAsync();
        await Console.Out.WriteLineAsync("ready");
        await Console.Out.FlushAsync();
        await Console.In.ReadLineAsync();
        await host.StopAsync();
    }

    private static IHost BuildSilo(int siloPort, int gatewayPort, IPEndPoint primary) => Host.CreateDefaultBuilder()
        .ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning))
        .UseOrleans(silo =>
        {
            silo.UseLocalhostClustering(siloPort, gatewayPort, primary, serviceId: "floor", clusterId: "floor");
            silo.Configure<GrainCollectionOptions>(o => o.CollectionAge = TimeSpan.FromHours(1));
            silo.AddGrainService<FloorSessionHost>();

            // Variants, read from the environment so that silo processes take them too. FLOOR_PLACEMENT=local places a
            // new grain on the silo its first call reached instead of by the hash of its id; FLOOR_DIRECTORY=distributed
            // uses Orleans' distributed grain directory (experimental in Orleans 10) instead of its default.
            if (Environment.GetEnvironmentVariable("FLOOR_PLACEMENT") == "local")
            {
                silo.Services.AddSingleton<PlacementStrategy, PreferLocalPlacement>();
            }
            else
            {
                silo.Services.AddSingleton<PlacementStrategy, HashBasedPlacement>();
            }

            if (Environment.GetEnvironmentVariable("FLOOR_DIRECTORY") == "distributed")
            {
#pragma warning disable ORLEANSEXP003 // experimental in Orleans 10: measured, not used by the broker
                silo.AddDistributedGrainDirectory();
#pragma warning restore ORLEANSEXP003
            }
        })
        .Build();

    private static async Task RunCluster(TextWriter output, int siloCount, int operations, bool coHosted, bool processes)
    {
        var hosts = new List<IHost>();
        var children = new List<Process>();
        IHost? clientHost = null;
        try
        {
            var primary = new IPEndPoint(IPAddress.Loopback, FreePort());
            var gatewayPorts = new List<int>();
            for (var i = 0; i < siloCount; i++)
            {
                var siloPort = i == 0 ? primary.Port : FreePort();
                var gatewayPort = FreePort();
                gatewayPorts.Add(gatewayPort);
                if (processes)
                {
                    children.Add(await StartSiloProcess(siloPort, gatewayPort, primary.Port));
                    continue;
                }

                var host = BuildSilo(siloPort, gatewayPort, primary);
                await host.StartAsync();
                hosts.Add(host);
            }

            IGrainFactory grains;
            if (coHosted)
            {
                grains = hosts[0].Services.GetRequiredService<IGrainFactory>();
            }
            else
            {
                var gateways = gatewayPorts.ToArray();
                clientHost = Host.CreateDefaultBuilder()
                    .ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning))
                    .UseOrleansClient(client => client.UseLocalhostClustering(gateways, serviceId: "floor", clusterId: "floor"))
                    .Build();
                await clientHost.StartAsync();
                grains = clientHost.Services.GetRequiredService<IClusterClient>();
            }

            await WaitForSilos(grains, siloCount);

            // Warm-up: every path compiled and every connection open before anything is measured. A pass on grains
            // already active calls the grains the new pass before it made, so they are on their silos already.
            await Measure(operations / 4, children, GrainConnect(grains, "warm"));
            await Measure(operations / 4, children, GrainConnect(grains, "warm"));
            for (var round = 1; round <= 2; round++)
            {
                Row(output, siloCount, "new grain: activation + 2 calls", await Measure(operations, children, GrainConnect(grains, $"g{round}")));
                Row(output, siloCount, "active grain: 2 calls", await Measure(operations, children, GrainConnect(grains, $"g{round}")));
            }

            // Sessions hosted by a service on each silo, called on the silo's own gateway (no activation, no directory,
            // no forward): the first two calls of a client id make its session, later ones find it.
            var sessionHosts = await SessionHosts(grains, coHosted ? hosts[0] : null, gatewayPorts);
            await Measure(operations / 4, children, HostConnect(sessionHosts, "warm"));
            await Measure(operations / 4, children, HostConnect(sessionHosts, "warm"));
            for (var round = 1; round <= 2; round++)
            {
                Row(output, siloCount, "silo's session host, new session: 2 calls", await Measure(operations, children, HostConnect(sessionHosts, $"h{round}")));
                Row(output, siloCount, "silo's session host, known session: 2 calls", await Measure(operations, children, HostConnect(sessionHosts, $"h{round}")));
            }

            var held = await Task.WhenAll(sessionHosts.Select(h => h.Count()));
            output.WriteLine($"|  | sessions per session host | {string.Join(", ", held)} | | | |");

            // Where new grains went, activated by the caller as the measured ones were.
            var where = await Task.WhenAll(Enumerable.Range(0, siloCount * 64)
                .Select(i => grains.GetGrain<IFloorSessionGrain>($"probe-{i}").Where()));
            var spread = string.Join(", ", where.GroupBy(s => s).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"port {g.Key}: {g.Count()}"));
            output.WriteLine($"|  | new grains per silo (sample of {where.Length}) | {spread} | | | |");
        }
        finally
        {
            if (clientHost is not null)
            {
                await clientHost.StopAsync();
                clientHost.Dispose();
            }

            for (var i = hosts.Count - 1; i >= 0; i--)
            {
                await hosts[i].StopAsync();
                hosts[i].Dispose();
            }

            foreach (var child in children)
            {
                child.StandardInput.Close();
                if (!child.WaitForExit(30_000))
                {
                    child.Kill(entireProcessTree: true);
                }

                child.Dispose();
            }
        }
    }

    // The session host of each silo: addressed by the silo's gateway address, which Orleans' client sends straight to
    // that gateway; with FLOOR_HOST_ROUTE=silo by the silo's own address, which the client sends to the gateway of its
    // bucket to be forwarded (to tell the direct route's cost from a forwarded one); co-hosted, the one local silo's.
    private static async Task<IFloorSessionHost[]> SessionHosts(IGrainFactory grains, IHost? coHostedSilo, List<int> gatewayPorts)
    {
        var typeCode = (int)StableHash.ComputeHash(RuntimeTypeNameFormatter.Format(typeof(IFloorSessionHost)));
        IFloorSessionHost At(SiloAddress address) => grains.GetGrain<IFloorSessionHost>(SystemTargetGrainId.CreateGrainServiceGrainId(typeCode, null!, address));

        if (coHostedSilo is not null)
        {
            return [At(coHostedSilo.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress)];
        }

        if (Environment.GetEnvironmentVariable("FLOOR_HOST_ROUTE") == "silo")
        {
            return (await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Keys.Select(At).ToArray();
        }

        return gatewayPorts.Select(port => At(SiloAddress.New(new IPEndPoint(IPAddress.Loopback, port), 0))).ToArray();
    }

    private static async Task<Process> StartSiloProcess(int siloPort, int gatewayPort, int primaryPort)
    {
        var self = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var start = new ProcessStartInfo(self)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };

        // Run as "dotnet <dll>" when this program was started that way.
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            start.ArgumentList.Add(typeof(ActivationFloor).Assembly.Location);
        }

        foreach (var argument in new[] { "floor-silo", siloPort.ToString(CultureInfo.InvariantCulture), gatewayPort.ToString(CultureInfo.InvariantCulture), primaryPort.ToString(CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("the silo process did not start");
        string? line;
        while ((line = await process.StandardOutput.ReadLineAsync()) is not null && line != "ready")
        {
        }

        if (line is null)
        {
            throw new InvalidOperationException($"the silo process on port {siloPort} ended before it was ready");
        }

        // Keep reading so that its output never blocks it.
        _ = process.StandardOutput.ReadToEndAsync();
        return process;
    }

    private static TimeSpan Cpu(Process self, List<Process> children)
    {
        self.Refresh();
        var total = self.TotalProcessorTime;
        foreach (var child in children)
        {
            child.Refresh();
            total += child.TotalProcessorTime;
        }

        return total;
    }

    private static readonly FloorFilter[] Filters = [new FloorFilter("devices/client/commands", 1)];

    // One connect's shape on the grain of its client id: the first call activates a new grain.
    private static Func<int, Task> GrainConnect(IGrainFactory grains, string prefix) => async i =>
    {
        var grain = grains.GetGrain<IFloorSessionGrain>($"{prefix}-client-{i}");
        var connected = await grain.Connect(new FloorConnect($"client-{i}", 60, 3600, "user", true));
        Check(await grain.Subscribe(connected, Filters));
    };

    // The same shape on the session host of the silo the client id's hash picks, called on that silo's gateway.
    private static Func<int, Task> HostConnect(IFloorSessionHost[] hosts, string prefix) => async i =>
    {
        var clientId = $"{prefix}-client-{i}";
        var host = hosts[StableHash.ComputeHash(clientId) % (uint)hosts.Length];
        var connected = await host.Connect(clientId, new FloorConnect(clientId, 60, 3600, "user", true));
        Check(await host.Subscribe(clientId, connected, Filters));
    };

    private static void Check(byte[] codes)
    {
        if (codes is not [1])
        {
            throw new InvalidOperationException("the subscription was not granted");
        }
    }

    private static async Task<Measured> Measure(
        int operations, List<Process> children, Func<int, Task> operation)
    {
        var next = -1;
        using var process = Process.GetCurrentProcess();
        GC.Collect();
        var (g0, g1, g2) = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
        var allocated = GC.GetTotalAllocatedBytes(precise: false);
        var cpu = Cpu(process, children);
        var start = Stopwatch.GetTimestamp();
        var workers = Enumerable.Range(0, InFlight).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < operations)
            {
                await operation(i);
            }
        });
        await Task.WhenAll(workers);

        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var cpuUsed = Cpu(process, children) - cpu;
        var bytes = GC.GetTotalAllocatedBytes(precise: false) - allocated;
        return new Measured(operations / seconds, cpuUsed.TotalMicroseconds / operations, bytes / 1024.0 / operations,
            (GC.CollectionCount(0) - g0) * 1000.0 / operations, (GC.CollectionCount(1) - g1) * 1000.0 / operations,
            (GC.CollectionCount(2) - g2) * 1000.0 / operations);
    }

    private static void Row(TextWriter output, int siloCount, string pass, Measured m) =>
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {siloCount} | {pass} | {m.Rate:N0} | {m.CpuMicros:F0} | {m.AllocatedKb:F1} | {m.Gen0:F1} / {m.Gen1:F1} / {m.Gen2:F1} |"));

    // One measured pass: operations a second, CPU µs and allocated KB per operation, collections per 1,000 operations.
    private readonly record struct Measured(double Rate, double CpuMicros, double AllocatedKb, double Gen0, double Gen1, double Gen2);

    private static async Task WaitForSilos(IGrainFactory grains, int siloCount)
    {
        var deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 60;
        var management = grains.GetGrain<IManagementGrain>(0);
        while ((await management.GetHosts(onlyActive: true)).Count < siloCount)
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"{siloCount} silos did not become active within 60 s");
            }

            await Task.Delay(200);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>The CONNECT's fields a session takes, about the size of the broker's request.</summary>
[GenerateSerializer, Immutable]
public sealed record FloorConnect(
    [property: Id(0)] string ClientId,
    [property: Id(1)] ushort KeepAlive,
    [property: Id(2)] uint SessionExpiry,
    [property: Id(3)] string? UserName,
    [property: Id(4)] bool Persistent);

/// <summary>One topic filter with its QoS.</summary>
[GenerateSerializer, Immutable]
public sealed record FloorFilter([property: Id(0)] string Filter, [property: Id(1)] byte Qos);

/// <summary>Sessions many to one service per silo, reached on that silo's gateway: the same calls with a client id.</summary>
public interface IFloorSessionHost : IGrainService
{
    Task<long> Connect(string clientId, FloorConnect request);

    Task<byte[]> Subscribe(string clientId, long connectionId, FloorFilter[] filters);

    /// <summary>How many sessions this host holds.</summary>
    Task<int> Count();
}

/// <summary>One per silo; its turns run one at a time, so its table needs no lock.</summary>
internal sealed class FloorSessionHost(GrainId grainId, Orleans.Runtime.Silo silo, ILoggerFactory loggerFactory)
    : GrainService(grainId, silo, loggerFactory), IFloorSessionHost
{
    private readonly Dictionary<string, HostedSession> _sessions = new(StringComparer.Ordinal);
    private long _connections;

    public Task<long> Connect(string clientId, FloorConnect request)
    {
        if (!_sessions.TryGetValue(clientId, out var session))
        {
            session = new HostedSession();
            _sessions.Add(clientId, session);
        }

        session.Request = request;
        session.ConnectionId = ++_connections;
        return Task.FromResult(session.ConnectionId);
    }

    public Task<byte[]> Subscribe(string clientId, long connectionId, FloorFilter[] filters)
    {
        if (!_sessions.TryGetValue(clientId, out var session) || session.ConnectionId != connectionId)
        {
            return Task.FromResult(filters.Select(_ => (byte)0x80).ToArray());
        }

        session.Filters.AddRange(filters);
        return Task.FromResult(filters.Select(f => f.Qos).ToArray());
    }

    public Task<int> Count() => Task.FromResult(_sessions.Count);

    private sealed class HostedSession
    {
        public FloorConnect? Request { get; set; }

        public long ConnectionId { get; set; }

        public List<FloorFilter> Filters { get; } = [];
    }
}

/// <summary>A session reduced to what Orleans does for it: an activation per client id and its calls.</summary>
public interface IFloorSessionGrain : IGrainWithStringKey
{
    Task<long> Connect(FloorConnect request);

    Task<byte[]> Subscribe(long connectionId, FloorFilter[] filters);

    /// <summary>The port of the silo this grain is active on.</summary>
    Task<string> Where();
}

/// <summary>Placed by the default placement the silo is given (the hash of its id over the active silos, as a session is placed by its client's ranking, unless FLOOR_PLACEMENT says otherwise).</summary>
internal sealed class FloorSessionGrain(ILocalSiloDetails silo) : Grain, IFloorSessionGrain
{
    private static long _connections;
    private readonly List<FloorFilter> _filters = [];
    private FloorConnect? _request;
    private long _connectionId;

    public Task<long> Connect(FloorConnect request)
    {
        _request = request;
        _connectionId = Interlocked.Increment(ref _connections);
        return Task.FromResult(_connectionId);
    }

    public Task<byte[]> Subscribe(long connectionId, FloorFilter[] filters)
    {
        if (connectionId != _connectionId || _request is null)
        {
            return Task.FromResult(filters.Select(_ => (byte)0x80).ToArray());
        }

        _filters.AddRange(filters);
        return Task.FromResult(filters.Select(f => f.Qos).ToArray());
    }

    public Task<string> Where() => Task.FromResult(silo.SiloAddress.Endpoint.Port.ToString(CultureInfo.InvariantCulture));
}
