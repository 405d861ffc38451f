using Xunit;
using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Grains;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>A two-silo in-process cluster running the MQTT grains on memory storage.</summary>
public sealed class MqttClusterFixture : IAsyncLifetime
{
    public const int Shards = 16;
    public const int MaxQueued = 5;
    public const int MaxInflight = 2;

    // Orleans holds observers weakly: a gateway the test no longer references could be collected while a silo
    // still pushes to it, and the push would then wait for its timeout.
    private readonly List<RecordingGateway> _gateways = [];

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public IClusterClient Client => Cluster.Client;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddIncomingGrainCallFilter(CountReplicaGrainApplies);
            silo.AddMemoryGrainStorage(MqttGrainStorage.Name);
            silo.AddMqttGrains(o =>
            {
                RouteShardingFromEnvironment.Apply(o);
                o.TopicShards = Shards;
                o.MaxQueuedMessages = MaxQueued;
                o.MaxInflightMessages = MaxInflight;
            });
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }

    /// <summary>How many route replica grains, over all silos, were called to apply routes of each client id.</summary>
    public ConcurrentDictionary<string, int> ReplicaGrainApplies { get; } = new();

    /// <summary>
    /// How many session copy grains, over all silos, were called to apply routes of each client id along with its
    /// session's copy (<see cref="ISessionCopyGrainV2.StoreWithRoutesAndAsk"/>, or
    /// <see cref="ISessionCopyGrain.StoreWithRoutes"/> to a silo of the previous release).
    /// </summary>
    public ConcurrentDictionary<string, int> RoutesWithCopies { get; } = new();

    /// <summary>How many times a topic shard grain was called to take a change of each client id's routes.</summary>
    public ConcurrentDictionary<string, int> ShardGrainAccepts { get; } = new();

    private Task CountReplicaGrainApplies(IIncomingGrainCallContext call)
    {
        if (call.Grain is IRouteReplicaGrain && call.Request.GetArgumentCount() >= 1 && call.Request.GetArgument(0) is ClientRoutes routes)
        {
            ReplicaGrainApplies.AddOrUpdate(routes.ClientId, 1, static (_, n) => n + 1);
        }
        else if (call.Grain is ITopicShardGrain && call.Request.GetArgumentCount() == 1 && call.Request.GetArgument(0) is ClientRoutes accepted)
        {
            ShardGrainAccepts.AddOrUpdate(accepted.ClientId, 1, static (_, n) => n + 1);
        }
        else if (call.Grain is ISessionCopyGrain && call.Request.GetArgumentCount() >= 2 && call.Request.GetArgument(1) is ClientRoutes[] riding)
        {
            foreach (var r in riding)
            {
                RoutesWithCopies.AddOrUpdate(r.ClientId, 1, static (_, n) => n + 1);
            }
        }

        return call.Invoke();
    }

    /// <summary>The route table of every silo.</summary>
    internal IEnumerable<RouteTable> RouteTables() =>
        Cluster.Silos.Select(s => Cluster.GetSiloServiceProvider(s.SiloAddress).GetRequiredService<RouteTable>());

    public ITopicShardGrain ShardFor(string topic) =>
        Client.GetGrain<ITopicShardGrain>(Orleans.Mqtt.Topics.MqttTopic.ShardOf(topic, Shards));

    /// <summary>A gateway stand-in: an observer that records what silos push to it.</summary>
    public RecordingGateway CreateGateway()
    {
        var gateway = new RecordingGateway(Client);
        lock (_gateways)
        {
            _gateways.Add(gateway);
        }

        return gateway;
    }
}

/// <summary>Records deliveries and disconnects pushed by silos.</summary>
public sealed class RecordingGateway : IGatewayObserver
{
    private readonly Channel<Delivery> _deliveries = Channel.CreateUnbounded<Delivery>();
    private readonly Channel<(long ConnectionId, byte ReasonCode)> _disconnects = Channel.CreateUnbounded<(long, byte)>();
    private static long s_connectionIds;

    public RecordingGateway(IClusterClient client)
    {
        Reference = client.CreateObjectReference<IGatewayObserver>(this);
        Id = "test-gateway-" + Guid.NewGuid().ToString("N")[..8];
    }

    public IGatewayObserver Reference { get; }

    public string Id { get; }

    public GatewayPresence NewConnection() => new(Reference, Id, Interlocked.Increment(ref s_connectionIds));

    public Task Deliver(Delivery[] deliveries)
    {
        foreach (var d in deliveries)
        {
            _deliveries.Writer.TryWrite(d);
        }

        return Task.CompletedTask;
    }

    public Task Disconnect(long connectionId, byte reasonCode)
    {
        _disconnects.Writer.TryWrite((connectionId, reasonCode));
        return Task.CompletedTask;
    }

    public async Task<Delivery> NextDeliveryAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return await _deliveries.Reader.ReadAsync(cts.Token);
    }

    public async Task<(long ConnectionId, byte ReasonCode)> NextDisconnectAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return await _disconnects.Reader.ReadAsync(cts.Token);
    }

    public bool TryTakeDelivery(out Delivery? delivery)
    {
        var taken = _deliveries.Reader.TryRead(out var d);
        delivery = d;
        return taken;
    }
}
