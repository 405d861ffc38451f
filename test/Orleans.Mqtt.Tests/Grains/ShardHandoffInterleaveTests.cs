using Xunit;
using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Ownership;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// A shard activation that finds itself no longer on its shard's first holder (a silo joined) hands the shard over after
/// the batch it is matching, not during it: while that batch waits for a session, the session can still send the shard
/// grain a change (Accept), as one activating after its home was lost does before it takes any delivery. Ending the
/// activation at once left that change waiting for the batch, and the batch for the session, until the response timeout.
/// </summary>
public sealed class ShardHandoffInterleaveTests : IAsyncLifetime
{
    private const int Shards = 16;
    private static readonly TimeSpan AcceptBound = TimeSpan.FromSeconds(5);
    private readonly InMemorySessionOwnershipStore _ownership = new();
    private readonly ConcurrentDictionary<string, SiloLocalGrainStorage> _storages = new();
    private InProcessTestCluster _cluster = null!;

    // The session whose next delivery first sends a change to its shard's grain, and what became of that change.
    private volatile string? _armed;
    private volatile int _armedShard;
    private readonly TaskCompletionSource<bool> _acceptAnswered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private IClusterClient Client => _cluster.Client;

    public async Task InitializeAsync()
    {
        _cluster = ShardedTestCluster.Builder(2, Shards, copies: 1, _storages, _ownership, o =>
        {
            o.ProbeTimeout = TimeSpan.FromSeconds(1);
            o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
        }, AcceptBeforeDelivery).Build();
        await _cluster.DeployAsync();
        await ShardedTestCluster.AllCaughtUpAsync(_cluster, Shards);
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task A_shard_activation_handing_over_takes_a_change_from_a_session_its_batch_waits_for()
    {
        var gateway = new RecordingGateway(Client);
        var prefix = "interleave-" + Guid.NewGuid().ToString("N")[..8];

        // A QoS 1 subscriber per shard, and a publish per shard: each shard grain is active on the shard's only holder.
        var topics = Enumerable.Range(0, 1000).Select(i => $"t{i}/{prefix}").DistinctBy(Shard).ToList();
        Assert.Equal(Shards, topics.Count);
        foreach (var topic in topics)
        {
            var session = Client.GetGrain<IClientSessionGrain>(topic + "-sub");
            var presence = gateway.NewConnection();
            await session.Connect(new ConnectRequest(presence, true, 300, null, 5, 0));
            await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);
            Assert.Equal(1, await PublishAsync(topic));
        }

        var before = FirstHolders(_cluster.Silos[0].SiloAddress);
        var joined = await _cluster.StartAdditionalSiloAsync();
        await ShardedTestCluster.AllCaughtUpAsync(_cluster, Shards);
        var after = FirstHolders(joined.SiloAddress);
        var moved = topics.First(t => after[Shard(t)].Equals(joined.SiloAddress) && !before[Shard(t)].Equals(joined.SiloAddress));

        // The publish reaches the activation on the former holder, which learns there that the shard moved; the
        // subscriber's session sends the shard grain a change before it takes the delivery.
        _armedShard = Shard(moved);
        _armed = moved + "-sub";
        var published = PublishAsync(moved);
        Assert.True(await _acceptAnswered.Task.WaitAsync(TimeSpan.FromSeconds(30)), "the change to the shard grain waited for the batch that waited for it");
        Assert.Equal(1, await published.WaitAsync(TimeSpan.FromSeconds(30)));

        // The shard then moves: the next publish is matched by the activation on the new holder.
        Assert.Equal(1, await PublishAsync(moved));
    }

    private async Task AcceptBeforeDelivery(IIncomingGrainCallContext call)
    {
        if (_armed is { } armed && call.Grain is IClientSessionGrain session && call.InterfaceMethod?.Name == nameof(IClientSessionGrain.Deliver)
            && session.GetPrimaryKeyString() == armed)
        {
            _armed = null;

            // A change of a client nothing of which is held: the shard grain answers it without writing anything.
            var change = new ClientRoutes("interleave-nobody-" + Guid.NewGuid().ToString("N")[..8], 1, [], false, null);
            try
            {
                await Client.GetGrain<ITopicShardGrain>(_armedShard).Accept(change).WaitAsync(AcceptBound);
                _acceptAnswered.TrySetResult(true);
            }
            catch (TimeoutException)
            {
                _acceptAnswered.TrySetResult(false);
            }
        }

        await call.Invoke();
    }

    private Task<int> PublishAsync(string topic) =>
        Client.GetGrain<ITopicShardGrain>(Shard(topic)).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("m"), Qos = 1 });

    // Each shard's first holder in the view of the given silo.
    private SiloAddress[] FirstHolders(SiloAddress silo)
    {
        var services = _cluster.GetSiloServiceProvider(silo);
        var holders = services.GetRequiredService<RouteHolders>();
        var snapshot = services.GetRequiredService<IClusterMembershipService>().CurrentSnapshot;
        return [.. Enumerable.Range(0, Shards).Select(shard => holders.HoldersOf(snapshot, shard)[0])];
    }

    private static int Shard(string topic) => Orleans.Mqtt.Topics.MqttTopic.ShardOf(topic, Shards);
}
