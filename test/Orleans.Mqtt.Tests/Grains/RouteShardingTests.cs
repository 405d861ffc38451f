using Xunit;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Grains;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// Routes sharded by topic (<c>Mqtt:Routes:Sharding</c> Topic, two copies) on three silos: an exact filter is held by
/// its topic shard's route holders only and a wildcard filter by every silo; an unsubscribe reaches the former holders;
/// a silo that joins or leaves keeps every exact route routable.
/// </summary>
public sealed class RouteShardingTests : IAsyncLifetime
{
    private const int Shards = 16;
    private const int Copies = 2;
    private readonly List<RecordingGateway> _gateways = [];
    private InProcessTestCluster _cluster = null!;

    private IClusterClient Client => _cluster.Client;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(3);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddMemoryGrainStorage(MqttGrainStorage.Name);
            silo.AddMqttGrains(o =>
            {
                o.TopicShards = Shards;
                o.Routes.Sharding = RouteSharding.Topic;
                o.Routes.Copies = Copies;
                o.GatewayTimeout = TimeSpan.FromHours(1);
                o.ReplicaRepairInterval = TimeSpan.FromHours(1);
                o.ReplicaTombstoneLifetime = TimeSpan.FromHours(4);
            });
        });
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task Each_silo_holds_the_exact_routes_of_its_shards_and_every_wildcard_route()
    {
        var prefix = NewId("count");
        const int exact = 48;
        const int wildcards = 2;
        await SubscribeAsync(prefix, exact, wildcards);

        var total = 0L;
        foreach (var silo in _cluster.Silos)
        {
            var (table, holders, snapshot) = Replica(silo.SiloAddress);
            var held = Enumerable.Range(0, exact).Count(i => holders.HoldersOf(snapshot, Shard(Topic(prefix, i))).Contains(silo.SiloAddress));
            Assert.Equal(held + wildcards, table.SubscriptionCount);
            Assert.True(held < exact, $"silo {silo.Name} holds all {exact} exact routes");
            total += table.SubscriptionCount;

            // Every silo knows every client (home, expiry, presence), also those whose filters it does not hold.
            Assert.All(Enumerable.Range(0, exact), i => Assert.NotNull(table.Get($"{prefix}-{i}")));
        }

        Assert.Equal((exact * Copies) + (wildcards * _cluster.Silos.Count), total);

        // Each exact topic reaches its subscriber and both wildcard subscribers, from its shard's first holder.
        for (var i = 0; i < exact; i++)
        {
            Assert.Equal(1 + wildcards, await PublishAsync(Topic(prefix, i)));
        }
    }

    [Fact]
    public async Task An_unsubscribe_removes_the_route_from_the_silos_that_held_it()
    {
        var gateway = Gateway();
        var clientId = NewId("unsub");
        var topic = clientId + "/t";
        var session = Client.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        await session.Connect(new ConnectRequest(presence, false, 3600, null, 5, 0));
        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1), new Subscription(clientId + "/+", 1)]);

        var holderTables = Tables().Where(t => t.Holders.HoldersOf(t.Snapshot, Shard(topic)).Contains(t.Silo)).ToList();
        Assert.Equal(Copies, holderTables.Count);
        foreach (var (silo, table, holders, snapshot) in Tables())
        {
            var routes = table.Get(clientId)!;
            Assert.Equal(holderTables.Any(h => h.Silo.Equals(silo)) ? 2 : 1, routes.Subscriptions.Length);
            Assert.Equal(2, routes.SubscriptionCount);
        }

        Assert.Equal(1, await PublishAsync(topic));

        await session.Unsubscribe(presence.ConnectionId, [topic]);

        foreach (var (_, table, _, _) in Tables())
        {
            Assert.Equal(clientId + "/+", Assert.Single(table.Get(clientId)!.Subscriptions).Filter);
        }

        await session.Unsubscribe(presence.ConnectionId, [clientId + "/+"]);
        Assert.All(Tables(), t => Assert.Empty(t.Table.Get(clientId)!.Subscriptions));
        Assert.Equal(0, await PublishAsync(topic));
    }

    [Fact]
    public async Task Exact_routes_stay_routable_when_a_silo_joins_and_when_one_leaves()
    {
        var prefix = NewId("moves");
        const int exact = 32;
        await SubscribeAsync(prefix, exact, wildcards: 0);

        var joined = await _cluster.StartAdditionalSiloAsync();
        await AllCaughtUpAsync();

        // The new silo took over some shards: it copied their exact routes before its shard grains served.
        var (joinedTable, joinedHolders, joinedView) = Replica(joined.SiloAddress);
        var taken = Enumerable.Range(0, exact).Where(i => joinedHolders.HoldersOf(joinedView, Shard(Topic(prefix, i))).Contains(joined.SiloAddress)).ToList();
        Assert.NotEmpty(taken);
        Assert.Equal(taken.Count, joinedTable.SubscriptionCount);
        AssertEveryHolderHoldsItsRoutes(prefix, exact);
        for (var i = 0; i < exact; i++)
        {
            Assert.Equal(1, await PublishAsync(Topic(prefix, i)));
        }

        // One of the first silos leaves: the next holder of each of its shards serves and a new holder copies them.
        await _cluster.StopSiloAsync(_cluster.Silos[1]);
        await AllCaughtUpAsync();
        AssertEveryHolderHoldsItsRoutes(prefix, exact);
        for (var i = 0; i < exact; i++)
        {
            Assert.Equal(1, await PublishAsync(Topic(prefix, i)));
        }

        // A subscription made now is routable at once too.
        var late = Client.GetGrain<IClientSessionGrain>(prefix + "-late");
        var presence = Gateway().NewConnection();
        await late.Connect(new ConnectRequest(presence, true, 0, null, 5, 0));
        await late.Subscribe(presence.ConnectionId, [new Subscription(prefix + "/late", 0)]);
        Assert.Equal(1, await PublishAsync(prefix + "/late"));
    }

    // Waits, on every silo, until its replica has taken in the membership it sees and holds every route of its shards.
    private async Task AllCaughtUpAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        foreach (var silo in _cluster.Silos)
        {
            var services = _cluster.GetSiloServiceProvider(silo.SiloAddress);
            var holders = services.GetRequiredService<RouteHolders>();
            var membership = services.GetRequiredService<IClusterMembershipService>();
            await services.GetRequiredService<RouteTable>().Ready.WaitAsync(timeout.Token);
            // Every silo sees the same active silos before the figures are compared.
            var expected = _cluster.Silos.Select(s => s.SiloAddress).ToHashSet();
            while (!membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress).ToHashSet().SetEquals(expected))
            {
                var next = new MembershipVersion(membership.CurrentSnapshot.Version.Value + 1);
                await membership.Refresh(next).AsTask().WaitAsync(timeout.Token);
            }

            for (var shard = 0; shard < Shards; shard++)
            {
                await holders.WhenServable(shard, membership.CurrentSnapshot.Version).WaitAsync(timeout.Token);
            }
        }
    }

    private void AssertEveryHolderHoldsItsRoutes(string prefix, int exact)
    {
        foreach (var (silo, table, holders, snapshot) in Tables())
        {
            for (var i = 0; i < exact; i++)
            {
                var topic = Topic(prefix, i);
                var holds = table.Get($"{prefix}-{i}")!.Subscriptions.Any(s => s.Filter == topic);
                Assert.True(holds == holders.HoldersOf(snapshot, Shard(topic)).Contains(silo), $"silo {silo} holding {topic}: {holds}");
            }
        }
    }

    private async Task SubscribeAsync(string prefix, int exact, int wildcards)
    {
        var gateway = Gateway();
        for (var i = 0; i < exact; i++)
        {
            var session = Client.GetGrain<IClientSessionGrain>($"{prefix}-{i}");
            var presence = gateway.NewConnection();
            await session.Connect(new ConnectRequest(presence, true, 0, null, 5, 0));
            await session.Subscribe(presence.ConnectionId, [new Subscription(Topic(prefix, i), 0)]);
        }

        for (var w = 0; w < wildcards; w++)
        {
            var session = Client.GetGrain<IClientSessionGrain>($"{prefix}-wild-{w}");
            var presence = gateway.NewConnection();
            await session.Connect(new ConnectRequest(presence, true, 0, null, 5, 0));
            await session.Subscribe(presence.ConnectionId, [new Subscription(w == 0 ? $"{prefix}/dev/+" : $"{prefix}/#", 0)]);
        }
    }

    private Task<int> PublishAsync(string topic) =>
        Client.GetGrain<ITopicShardGrain>(Shard(topic)).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("m"), Qos = 0 });

    private (RouteTable Table, RouteHolders Holders, ClusterMembershipSnapshot Snapshot) Replica(SiloAddress silo)
    {
        var services = _cluster.GetSiloServiceProvider(silo);
        return (services.GetRequiredService<RouteTable>(), services.GetRequiredService<RouteHolders>(), services.GetRequiredService<IClusterMembershipService>().CurrentSnapshot);
    }

    private List<(SiloAddress Silo, RouteTable Table, RouteHolders Holders, ClusterMembershipSnapshot Snapshot)> Tables() =>
        [.. _cluster.Silos.Select(s =>
        {
            var (table, holders, snapshot) = Replica(s.SiloAddress);
            return (s.SiloAddress, table, holders, snapshot);
        })];

    private RecordingGateway Gateway()
    {
        var gateway = new RecordingGateway(Client);
        _gateways.Add(gateway);
        return gateway;
    }

    private static string Topic(string prefix, int i) => $"{prefix}/dev/{i}";

    private static int Shard(string topic) => Orleans.Mqtt.Topics.MqttTopic.ShardOf(topic, Shards);

    private static string NewId(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..10];
}

/// <summary>The parts of one version of a client's routes that silos holding different topic shards receive.</summary>
public sealed class RouteTablePartTests
{
    private static ClientRoutes Part(long version, int total, params string[] filters) =>
        new("c", version, [.. filters.Select(f => new Subscription(f, 1))], true, null, SubscriptionTotal: total);

    [Fact]
    public void Parts_of_one_version_merge_in_any_order_and_a_newer_version_replaces_them()
    {
        var table = new RouteTable();
        Assert.True(table.Apply(Part(5, 3, "w/+", "a/b")));
        Assert.True(table.Apply(Part(5, 3, "w/+", "c/d")));
        Assert.False(table.Apply(Part(5, 3, "w/+", "a/b")));
        Assert.Equal(["w/+", "a/b", "c/d"], table.Get("c")!.Subscriptions.Select(s => s.Filter));
        Assert.Null(table.Get("c")!.SubscriptionTotal);
        Assert.Equal(3, table.SubscriptionCount);

        // An older part adds nothing; the newer version (an unsubscribe of a/b) replaces everything held.
        Assert.False(table.Apply(Part(4, 4, "w/+", "x/y")));
        Assert.True(table.Apply(Part(6, 2, "w/+")));
        Assert.Equal("w/+", Assert.Single(table.Get("c")!.Subscriptions).Filter);
        Assert.Equal(2, table.Get("c")!.SubscriptionCount);
        Assert.False(table.Apply(Part(5, 3, "w/+", "a/b")));
        Assert.Equal(1, table.SubscriptionCount);
    }
}
