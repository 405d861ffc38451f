using BenchmarkDotNet.Attributes;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Benchmarks;

/// <summary>
/// The silo's route replica with 200,000 clients of 5 subscriptions each (1M routes): applying one client's new
/// routes (a SUBSCRIBE or a reconnect as a replica sees it), matching a published message to its sessions, and the
/// digest the repair compares.
/// </summary>
[MemoryDiagnoser]
public class RouteTableBenchmarks
{
    private const int Clients = 200_000;
    private readonly List<SessionMatch> _matches = new(16);
    private RouteTable _table = null!;
    private ClientRoutes[] _updates = null!;
    private MqttMessage[] _messages = null!;
    private long _version = 10;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        _table = new RouteTable();
        var filters = FilterSet.Generate(Clients * 5, new Random(42));
        for (var c = 0; c < Clients; c++)
        {
            _table.Apply(new ClientRoutes($"client-{c}", 1, [.. filters.Skip(c * 5).Take(5).Select(f => new Subscription(f, 1))], true, null));
        }

        _updates = [.. Enumerable.Range(0, 1024).Select(i => new ClientRoutes($"client-{i * 97}", 0, [.. filters.Skip(i * 97 * 5).Take(5).Select(f => new Subscription(f, 1))], true, null))];
        _messages = [.. filters.Where(f => !f.Contains('+') && !f.Contains('#')).Take(1024).Select(t => new MqttMessage { Topic = t, Qos = 1 })];
    }

    /// <summary>Replacing one client's five routes with a newer version.</summary>
    [Benchmark]
    public bool ApplyUpdate() => _table.Apply(_updates[_next++ & 1023] with { Version = ++_version });

    /// <summary>Matching a message to the sessions it goes to (options merged per session).</summary>
    [Benchmark]
    public int MatchSessions()
    {
        _matches.Clear();
        _table.Match(_messages[_next++ & 1023], _matches);
        return _matches.Count;
    }

    /// <summary>The digest over the whole replica, as each repair round computes it.</summary>
    [Benchmark]
    public long Digest() => _table.Digest()[0];
}
