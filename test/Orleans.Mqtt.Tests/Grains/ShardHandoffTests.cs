using Xunit;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Telemetry;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// Routes sharded by topic with one copy, so that a silo joining takes whole shards away from their only holder: the
/// shard activation still running on the former holder must keep matching every subscription of its shard, also those
/// made after the change by a silo that no longer writes the former holder (the change goes to the shard grain
/// itself), and so must the activation that follows it on the new holder. While every activation runs on its shard's
/// holder, a change is not sent to the shard grain as well, also when a persistent session's part rides in its copy's
/// call to that holder.
/// </summary>
public sealed class ShardHandoffTests : IAsyncLifetime
{
    private const int Shards = 16;
    private readonly InMemorySessionOwnershipStore _ownership = new();
    private readonly ConcurrentDictionary<string, SiloLocalGrainStorage> _storages = new();
    private readonly MeterListener _listener = new();

    // The meter factories of this cluster's silos: other test classes' clusters run in the same process.
    private readonly ConcurrentDictionary<object, bool> _scopes = new();
    private long _shardAccepts;

    // Exact subscriptions that rode in a session copy's call (ISessionCopyGrainV2.StoreWithRoutesAndAsk), by client id.
    private readonly ConcurrentDictionary<string, int> _riding = new();
    private InProcessTestCluster _cluster = null!;

    private IClusterClient Client => _cluster.Client;

    private long ShardAccepts => Interlocked.Read(ref _shardAccepts);

    public async Task InitializeAsync()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == MqttMetrics.MeterName && instrument.Name == "mqtt.routes.shard_accepts")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Meter.Scope is { } scope && _scopes.ContainsKey(scope))
            {
                Interlocked.Add(ref _shardAccepts, value);
            }
        });
        _listener.Start();
        _cluster = ShardedTestCluster.Builder(2, Shards, copies: 1, _storages, _ownership, o =>
        {
            o.ProbeTimeout = TimeSpan.FromSeconds(1);
            o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
        }, CountRiding).Build();
        await _cluster.DeployAsync();
        CountShardAcceptsOf(_cluster.Silos);
        await ShardedTestCluster.AllCaughtUpAsync(_cluster, Shards);
    }

    public async Task DisposeAsync()
    {
        _listener.Dispose();
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task A_shard_moved_by_a_join_matches_old_and_new_subscriptions_on_its_former_and_its_new_holder()
    {
        var gateway = new RecordingGateway(Client);
        var prefix = "handoff-" + Guid.NewGuid().ToString("N")[..8];

        // One subscriber per shard, and one publish per shard: each shard grain is active on the shard's only holder.
        var topics = Enumerable.Range(0, 1000).Select(i => $"t{i}/{prefix}").DistinctBy(Shard).ToList();
        Assert.Equal(Shards, topics.Count);
        foreach (var topic in topics)
        {
            await SubscribeAsync(gateway, topic + "-old", topic);
            Assert.Equal(1, await PublishAsync(topic));
        }

        // Every shard's activation runs on its holder, which the writer writes and which answers that it serves the
        // shard: a subscription to another topic of each shard is not sent to the shard grain, and is routable.
        var steady = Enumerable.Range(1000, 1000).Select(i => $"t{i}/{prefix}").DistinctBy(Shard).ToList();
        Assert.Equal(Shards, steady.Count);
        var acceptsBefore = ShardAccepts;
        foreach (var topic in steady)
        {
            await SubscribeAsync(gateway, topic + "-steady", topic);
            Assert.Equal(1, await PublishAsync(topic));
        }

        Assert.Equal(acceptsBefore, ShardAccepts);

        // So is a persistent session's subscription: its home writes its own replica and asks it, and its copy holder
        // (the other silo, Mqtt:SessionReplicas 2) takes the part of its shards along with the copy and answers as well.
        var kept = Enumerable.Range(2000, 1000).Select(i => $"t{i}/{prefix}").DistinctBy(Shard).ToList();
        Assert.Equal(Shards, kept.Count);
        foreach (var topic in kept)
        {
            await SubscribeAsync(gateway, topic + "-kept", topic, expiry: 300);
            Assert.Equal(1, await PublishAsync(topic));
        }

        Assert.Equal(acceptsBefore, ShardAccepts);
        Assert.Contains(kept, t => _riding.ContainsKey(t + "-kept"));

        var before = HoldersBySilo(_cluster.Silos[0].SiloAddress);
        var joined = await _cluster.StartAdditionalSiloAsync();
        CountShardAcceptsOf([joined]);
        await ShardedTestCluster.AllCaughtUpAsync(_cluster, Shards);

        // The shards the new silo took: their former holder no longer holds them, in every silo's view.
        var after = HoldersBySilo(joined.SiloAddress);
        var moved = topics.Where(t => after[Shard(t)].Equals(joined.SiloAddress) && !before[Shard(t)].Equals(joined.SiloAddress)).ToList();
        Assert.NotEmpty(moved);
        foreach (var topic in moved)
        {
            // A subscription made now is written to the new holder only, the silo every view names, where no activation
            // of the shard runs yet: it also goes to the shard grain, whose activation still runs on the former holder.
            var accepts = ShardAccepts;
            await SubscribeAsync(gateway, topic + "-new", topic);
            Assert.Equal(accepts + 1, ShardAccepts);

            // So does a persistent session's, whether its part rides in the copy's call to the new holder or not.
            await SubscribeAsync(gateway, topic + "-new-kept", topic, expiry: 300);
            Assert.Equal(accepts + 2, ShardAccepts);

            // And so does the new connection of a persistent session subscribed to the shard before the join, which
            // changes only its presence: a QoS 0 message that the activation on the former holder matches goes to it.
            var keptTopic = kept.Single(t => Shard(t) == Shard(topic));
            var reconnected = new RecordingGateway(Client);
            var connection = reconnected.NewConnection();
            await Client.GetGrain<IClientSessionGrain>(keptTopic + "-kept").Connect(new ConnectRequest(connection, false, 300, null, 5, 0));
            Assert.Equal(accepts + 3, ShardAccepts);
            Assert.Equal(1, await PublishAsync(keptTopic));
            Assert.Equal(connection.ConnectionId, (await reconnected.NextDeliveryAsync()).ConnectionId);

            // That publish still reached the activation on the former holder, and the next reach the activation that
            // follows it on the new holder. Both match the three subscriptions of the topic.
            Assert.Equal(3, await PublishAsync(topic));
            Assert.Equal(3, await PublishAsync(topic));
        }

        // The former holders forget the shards they gave away once their activations there have ended.
        var formerTables = _cluster.Silos.Where(s => !s.SiloAddress.Equals(joined.SiloAddress))
            .Select(s => _cluster.GetSiloServiceProvider(s.SiloAddress).GetRequiredService<RouteHolders>());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        foreach (var holders in formerTables)
        {
            await holders.WhenServingOnlyHeld().WaitAsync(timeout.Token);
        }

        foreach (var topic in moved)
        {
            foreach (var silo in _cluster.Silos.Where(s => !s.SiloAddress.Equals(joined.SiloAddress)))
            {
                var table = _cluster.GetSiloServiceProvider(silo.SiloAddress).GetRequiredService<RouteTable>();
                Assert.Empty(table.Get(topic + "-old")?.Subscriptions ?? []);
            }
        }
    }

    private async Task SubscribeAsync(RecordingGateway gateway, string clientId, string topic, uint expiry = 0)
    {
        var session = Client.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        await session.Connect(new ConnectRequest(presence, true, expiry, null, 5, 0));
        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 0)]);
    }

    private Task<int> PublishAsync(string topic) =>
        Client.GetGrain<ITopicShardGrain>(Shard(topic)).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("m"), Qos = 0 });

    // Each shard's first holder in the view of the given silo.
    private SiloAddress[] HoldersBySilo(SiloAddress silo)
    {
        var services = _cluster.GetSiloServiceProvider(silo);
        var holders = services.GetRequiredService<RouteHolders>();
        var snapshot = services.GetRequiredService<IClusterMembershipService>().CurrentSnapshot;
        return [.. Enumerable.Range(0, Shards).Select(shard => holders.HoldersOf(snapshot, shard)[0])];
    }

    private Task CountRiding(IIncomingGrainCallContext call)
    {
        if (call.Grain is ISessionCopyGrain && call.Request.GetArgumentCount() >= 2 && call.Request.GetArgument(1) is ClientRoutes[] riding)
        {
            foreach (var routes in riding)
            {
                if (routes.Subscriptions.Length > 0)
                {
                    _riding.AddOrUpdate(routes.ClientId, 1, static (_, n) => n + 1);
                }
            }
        }

        return call.Invoke();
    }

    private void CountShardAcceptsOf(IEnumerable<InProcessSiloHandle> silos)
    {
        foreach (var silo in silos)
        {
            _scopes[_cluster.GetSiloServiceProvider(silo.SiloAddress).GetRequiredService<IMeterFactory>()] = true;
        }
    }

    private static int Shard(string topic) => Orleans.Mqtt.Topics.MqttTopic.ShardOf(topic, Shards);
}
