using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Silo.Storage;
using Orleans.Serialization;
using Orleans.Serialization.Serializers;

namespace Orleans.Mqtt.Benchmarks;

/// <summary>
/// What a silo's check for stale session copies at its start costs before its replica is ready: listing the stored
/// sessions whose routes name another home, here none of them, out of a session store with the default options
/// (256 MiB in memory) holding 200,000 sessions of one subscription each, against a route table that names this
/// silo as the home of every one.
/// </summary>
public class StoredSessionScanBenchmarks
{
    private const int Sessions = 200_000;
    private const string Home = "silo-home";
    private readonly GrainType _sessions = GrainType.Create("clientsession");
    private ServiceProvider _services = null!;
    private FasterGrainStorage _storage = null!;
    private RouteTable _table = null!;
    private string _directory = null!;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "orleans-mqtt-scan-" + Guid.NewGuid().ToString("N"));
        _services = new ServiceCollection().AddSerializer(s => s.AddAssembly(typeof(SessionState).Assembly)).BuildServiceProvider();
        _storage = new FasterGrainStorage(
            "mqtt",
            new FasterStorageOptions { DataDirectory = _directory },
            _services.GetRequiredService<Serializer>(),
            _services.GetRequiredService<IActivatorProvider>(),
            TimeProvider.System,
            NullLogger<FasterGrainStorage>.Instance);
        _storage.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
        _table = new RouteTable();
        for (var start = 0; start < Sessions; start += 1000)
        {
            var writes = Enumerable.Range(start, 1000).Select(i =>
            {
                var state = new SessionState { SessionExpiryInterval = 300, RouteVersion = 1 };
                state.Subscriptions[$"devices/{i}/cmd"] = new Subscription($"devices/{i}/cmd", 1);
                _table.Apply(new ClientRoutes($"client-{i}", 1, [.. state.Subscriptions.Values], true, null, Home: Home));
                return _storage.WriteStateAsync("session", GrainId.Create(_sessions, $"client-{i}"), new GrainState<SessionState>(state));
            });
            Task.WhenAll(writes).GetAwaiter().GetResult();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _storage.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _services.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>One scan of every stored session against the route table.</summary>
    [Benchmark]
    public int FindSessionsHomedElsewhere() => _storage.FindKeys("session", _sessions, clientId => _table.Get(clientId)?.Home != Home).Count;
}
