using Xunit;
using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Ownership;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// Routes sharded by topic with one copy, so that a silo joining takes whole shards away from their only holder: the
/// shard activation still running on the former holder must keep matching every subscription of its shard, also those
/// made after the change by a silo that no longer writes the former holder, and so must the activation that follows
/// it on the new holder.
/// </summary>
public sealed class ShardHandoffTests : IAsyncLifetime
{
    private const int Shards = 16;
    private readonly InMemorySessionOwnershipStore _ownership = new();
    private readonly ConcurrentDictionary<string, SiloLocalGrainStorage> _storages = new();
    private InProcessTestCluster _cluster = null!;

    private IClusterClient Client => _cluster.Client;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddGrainStorage(MqttGrainStorage.Name, (services, _) =>
                _storages.GetOrAdd(services.GetRequiredService<ILocalSiloDetails>().Name, _ => new SiloLocalGrainStorage(services.GetRequiredService<DeepCopier>())));
            silo.Services.AddSingleton<ISessionOwnershipStore>(_ownership);
            silo.Services.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromSeconds(1);
                o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
            });
            silo.AddMqttGrains(o =>
            {
                o.TopicShards = Shards;
                o.Routes.Sharding = RouteSharding.Topic;
                o.Routes.Copies = 1;
                o.GatewayTimeout = TimeSpan.FromHours(1);
                o.ReplicaRepairInterval = TimeSpan.FromHours(1);
                o.ReplicaTombstoneLifetime = TimeSpan.FromHours(4);
            });
        });
        _cluster = builder.Build();
        await _cluster.DeployAsync();
        await AllFollowAsync();
    }

    public async Task DisposeAsync()
    {
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

        var before = HoldersBySilo(_cluster.Silos[0].SiloAddress);
        var joined = await _cluster.StartAdditionalSiloAsync();
        await AllFollowAsync();

        // The shards the new silo took: their former holder no longer holds them, in every silo's view.
        var after = HoldersBySilo(joined.SiloAddress);
        var moved = topics.Where(t => after[Shard(t)].Equals(joined.SiloAddress) && !before[Shard(t)].Equals(joined.SiloAddress)).ToList();
        Assert.NotEmpty(moved);
        foreach (var topic in moved)
        {
            // A subscription made now is written to the new holder only, the silo every view names.
            await SubscribeAsync(gateway, topic + "-new", topic);

            // The first publish still reaches the activation on the former holder; the next one the activation that
            // follows it on the new holder. Both match both subscriptions.
            Assert.Equal(2, await PublishAsync(topic));
            Assert.Equal(2, await PublishAsync(topic));
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

    private async Task SubscribeAsync(RecordingGateway gateway, string clientId, string topic)
    {
        var session = Client.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        await session.Connect(new ConnectRequest(presence, true, 0, null, 5, 0));
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

    // Waits until every silo sees every silo active and its replica has taken that view in.
    private async Task AllFollowAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var expected = _cluster.Silos.Select(s => s.SiloAddress).ToHashSet();
        foreach (var silo in _cluster.Silos)
        {
            var services = _cluster.GetSiloServiceProvider(silo.SiloAddress);
            var membership = services.GetRequiredService<IClusterMembershipService>();
            await services.GetRequiredService<RouteTable>().Ready.WaitAsync(timeout.Token);
            while (!membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress).ToHashSet().SetEquals(expected))
            {
                await membership.Refresh(new MembershipVersion(membership.CurrentSnapshot.Version.Value + 1)).AsTask().WaitAsync(timeout.Token);
            }

            var holders = services.GetRequiredService<RouteHolders>();
            for (var shard = 0; shard < Shards; shard++)
            {
                await holders.WhenServable(shard, membership.CurrentSnapshot.Version).WaitAsync(timeout.Token);
            }
        }
    }

    private static int Shard(string topic) => Orleans.Mqtt.Topics.MqttTopic.ShardOf(topic, Shards);
}
