using Xunit;
using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Ownership;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// Routes sharded by topic (<c>Mqtt:Routes:Sharding</c> Topic, two copies) on three silos: an exact filter is held by
/// its topic shard's route holders only and a wildcard filter by every silo; a client's entry by its entry holders and
/// the holders of its filters only; an unsubscribe reaches the former holders; a silo that joins or leaves keeps every
/// exact route routable and every entry with its holders.
/// </summary>
public sealed class RouteShardingTests : IAsyncLifetime
{
    private const int Shards = 16;
    private const int Copies = 2;
    private readonly List<RecordingGateway> _gateways = [];

    // Each silo's own storage, so a killed silo's sessions survive only in the copies on the others.
    private readonly ConcurrentDictionary<string, SiloLocalGrainStorage> _storages = new();
    private readonly InMemorySessionOwnershipStore _ownership = new();
    private InProcessTestCluster _cluster = null!;

    private IClusterClient Client => _cluster.Client;

    // Calls that must outlive a killed silo start on the first silo, which is never killed.
    private IGrainFactory Grains => _cluster.GetSiloServiceProvider(_cluster.Silos[0].SiloAddress).GetRequiredService<IGrainFactory>();

    public async Task InitializeAsync()
    {
        // A killed silo is declared dead within seconds, by both others: one slow silo on a loaded machine does not
        // declare a live one dead, which would change every shard's holders under the tests that count them.
        _cluster = ShardedTestCluster.Builder(3, Shards, Copies, _storages, _ownership, o =>
        {
            o.ProbeTimeout = TimeSpan.FromSeconds(1);
            o.NumMissedProbesLimit = 3;
            o.NumVotesForDeathDeclaration = 2;
            o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
        }).Build();
        await _cluster.DeployAsync();

        // Every silo sees the three of them before a test computes holders from a silo's view.
        await AllCaughtUpAsync();
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
            total += table.SubscriptionCount;

            // A silo knows a client (home, expiry, presence) only as its entry holder or a holder of its filter.
            Assert.All(Enumerable.Range(0, exact), i =>
            {
                var clientId = $"{prefix}-{i}";
                var holds = holders.IsEntryHolder(snapshot, clientId, EntryHome(clientId), silo.SiloAddress)
                    || holders.HoldersOf(snapshot, Shard(Topic(prefix, i))).Contains(silo.SiloAddress);
                Assert.True(holds == table.Get(clientId) is not null, $"silo {silo.SiloAddress} holding {clientId}: {!holds}");
            });
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

        // Without a filter the client is held by its entry holders alone: the other silo forgets it.
        await session.Unsubscribe(presence.ConnectionId, [clientId + "/+"]);
        foreach (var (silo, table, holders, snapshot) in Tables())
        {
            var entryHolder = holders.IsEntryHolder(snapshot, clientId, EntryHome(clientId), silo);
            Assert.True(entryHolder == table.Get(clientId) is not null, $"silo {silo} holding {clientId}: {!entryHolder}");
            Assert.Empty(table.Get(clientId)?.Subscriptions ?? []);
        }

        Assert.Equal(0, await PublishAsync(topic));
    }

    [Fact]
    public async Task Exact_routes_stay_routable_when_a_silo_joins_and_when_one_leaves()
    {
        var prefix = NewId("moves");
        const int exact = 32;
        await SubscribeAsync(prefix, exact, wildcards: 0);

        // Persistent sessions without a filter: held by their entry holders alone, which the join and the leave change.
        var gateway = Gateway();
        var persistent = Enumerable.Range(0, 24).Select(i => $"{prefix}-p{i}").ToList();
        foreach (var clientId in persistent)
        {
            await Client.GetGrain<IClientSessionGrain>(clientId).Connect(new ConnectRequest(gateway.NewConnection(), false, 3600, null, 5, 0));
        }

        var joined = await _cluster.StartAdditionalSiloAsync();
        await AllCaughtUpAsync();
        AssertEveryEntryWithItsHolders(persistent);
        var (_, joinedHoldersView, view) = Replica(joined.SiloAddress);
        var movedHere = persistent.Where(c => joinedHoldersView.IsEntryHolder(view, c, EntryHome(c), joined.SiloAddress)).ToList();
        Assert.NotEmpty(movedHere);

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

        // Each session is still there, reconnected through the silo that joined (an entry holder of some, not of
        // others); those of the silo that left were handed over, and their entries moved with their new homes.
        var joinedGrains = _cluster.GetSiloServiceProvider(joined.SiloAddress).GetRequiredService<IGrainFactory>();
        foreach (var clientId in persistent)
        {
            var result = await joinedGrains.GetGrain<IClientSessionGrain>(clientId).Connect(new ConnectRequest(gateway.NewConnection(), false, 3600, null, 5, 0));
            Assert.True(result.SessionPresent, clientId);
        }

        AssertEveryEntryWithItsHolders(persistent);

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

    [Fact]
    public async Task A_client_is_held_by_its_entry_holders_and_the_holders_of_its_filters_and_no_other()
    {
        var gateway = Gateway();
        var clientId = NewId("presence");
        var session = Client.GetGrain<IClientSessionGrain>(clientId);

        // A new session: the home and the next entry holder get it; the third silo holds nothing of it.
        var first = gateway.NewConnection();
        await session.Connect(new ConnectRequest(first, false, 3600, null, 5, 0));
        var home = EntryHome(clientId);
        Assert.NotNull(home);
        var holders = Tables().Where(t => t.Holders.IsEntryHolder(t.Snapshot, clientId, home, t.Silo)).Select(t => t.Silo).ToList();
        Assert.Equal(2, holders.Count);
        AssertHeldBy(clientId, first, holders);

        // A reconnect changes only the presence: the same two.
        var second = gateway.NewConnection();
        await session.Connect(new ConnectRequest(second, false, 3600, null, 5, 0));
        AssertHeldBy(clientId, second, holders);

        // A subscription to a topic whose shard grain runs on the silo that is no entry holder: that silo holds the
        // client's part from then on and gets its reconnects too, and a message to the topic, matched there, goes to
        // the newest connection.
        var (_, _, routeHolders, view) = Tables()[0];
        var other = _cluster.Silos.Select(s => s.SiloAddress).Single(s => !holders.Contains(s));
        var topic = Enumerable.Range(0, 1000).Select(i => $"{clientId}/t{i}").First(t => routeHolders.HoldersOf(view, Shard(t))[0].Equals(other));
        await session.Subscribe(second.ConnectionId, [new Subscription(topic, 0)]);
        Assert.All(Tables(), t => Assert.Equal(second.ConnectionId, t.Table.Get(clientId)!.Presence!.ConnectionId));
        var third = gateway.NewConnection();
        await session.Connect(new ConnectRequest(third, false, 3600, null, 5, 0));
        Assert.All(Tables(), t => Assert.Equal(third.ConnectionId, t.Table.Get(clientId)!.Presence!.ConnectionId));
        Assert.Equal(1, await PublishAsync(topic));
        Assert.Equal(third.ConnectionId, (await gateway.NextDeliveryAsync()).ConnectionId);

        // With a wildcard filter every silo matches the client, so every silo gets its presence.
        await session.Subscribe(third.ConnectionId, [new Subscription(clientId + "/+", 0)]);
        var fourth = gateway.NewConnection();
        await session.Connect(new ConnectRequest(fourth, false, 3600, null, 5, 0));
        Assert.All(Tables(), t => Assert.Equal(fourth.ConnectionId, t.Table.Get(clientId)!.Presence!.ConnectionId));

        // The digest repair compares what both silos must hold: a silo that holds nothing of a client does not count
        // as differing from its entry holders, and nothing is copied to it.
        var idleId = NewId("presence-idle");
        var idle = Client.GetGrain<IClientSessionGrain>(idleId);
        await idle.Connect(new ConnectRequest(gateway.NewConnection(), false, 3600, null, 5, 0));
        var latest = gateway.NewConnection();
        await idle.Connect(new ConnectRequest(latest, false, 3600, null, 5, 0));
        var idleHolders = Tables().Where(t => t.Holders.IsEntryHolder(t.Snapshot, idleId, EntryHome(idleId), t.Silo)).Select(t => t.Silo).ToList();
        AssertHeldBy(idleId, latest, idleHolders);
        foreach (var silo in _cluster.Silos)
        {
            Assert.Equal(0, await _cluster.GetSiloServiceProvider(silo.SiloAddress).GetRequiredService<ReplicaSync>().RepairOnceAsync());
        }

        AssertHeldBy(idleId, latest, idleHolders);
    }

    [Fact]
    public async Task A_connect_through_a_silo_that_holds_no_entry_of_the_client_finds_its_session()
    {
        var gateway = Gateway();
        var (_, _, holders, snapshot) = Tables()[0];

        // A client id whose entry holders (a new session's home is the first silo of its ranking) leave out the silo
        // the calls start on: that silo's placement and the activation must ask the entry holders for the session.
        var outsider = _cluster.Silos[2].SiloAddress;
        var clientId = Enumerable.Range(0, 1000).Select(_ => NewId("outside")).First(c => RouteHolders.EntryLookupOrder(snapshot, c).IndexOf(outsider) == 2);
        var grains = _cluster.GetSiloServiceProvider(outsider).GetRequiredService<IGrainFactory>();
        var session = grains.GetGrain<IClientSessionGrain>(clientId);
        var first = gateway.NewConnection();
        Assert.False((await session.Connect(new ConnectRequest(first, false, 3600, null, 5, 0))).SessionPresent);
        var topic = clientId + "/t";
        await session.Subscribe(first.ConnectionId, [new Subscription(topic, 1)]);
        var home = EntryHome(clientId);
        Assert.Equal(_cluster.Silos.Single(s => s.SiloAddress.Equals(RouteHolders.EntryLookupOrder(snapshot, clientId)[0])).Name, home);
        Assert.Equal(holders.HoldersOf(snapshot, Shard(topic)).Contains(outsider), Replica(outsider).Table.Get(clientId) is not null);

        // Out of memory, the session is found again through that silo: on its home, with its subscription.
        await session.Disconnect(first.ConnectionId, DisconnectKind.Normal);
        await _cluster.DeactivateAsync(session);
        var second = gateway.NewConnection();
        Assert.True((await session.Connect(new ConnectRequest(second, false, 3600, null, 5, 0))).SessionPresent);
        Assert.Equal(home, EntryHome(clientId));
        Assert.Equal(1, await PublishAsync(topic));
        Assert.Equal(second.ConnectionId, (await gateway.NextDeliveryAsync()).ConnectionId);
    }

    [Fact]
    public async Task A_session_whose_home_is_killed_fails_over_with_its_newest_presence()
    {
        var gateway = Gateway();
        string clientId;
        IClientSessionGrain session;
        GatewayPresence first;
        InProcessSiloHandle homeSilo;
        do
        {
            // The first silo stays (calls start there): a session placed on it is connected again under another id.
            clientId = NewId("failover");
            session = Grains.GetGrain<IClientSessionGrain>(clientId);
            first = gateway.NewConnection();
            await session.Connect(new ConnectRequest(first, false, 3600, null, 5, 0));
            var home = Tables().Select(t => t.Table.Get(clientId)).First(r => r is not null)!.Home;
            homeSilo = _cluster.Silos.Single(s => s.Name == home);
        }
        while (ReferenceEquals(homeSilo, _cluster.Silos[0]));

        // A topic whose shard's holders are the session's entry holders, so that the third silo holds nothing of the
        // client: the failover must find it on the entry holder that is left.
        var (_, _, holders, snapshot) = Tables()[0];
        var entryHolders = _cluster.Silos.Select(s => s.SiloAddress).Where(s => holders.IsEntryHolder(snapshot, clientId, homeSilo.Name, s)).ToList();
        var topic = Enumerable.Range(0, 1000).Select(i => $"{clientId}/t{i}").First(t => holders.HoldersOf(snapshot, Shard(t)).All(entryHolders.Contains));
        await session.Subscribe(first.ConnectionId, [new Subscription(topic, 1)]);
        var second = gateway.NewConnection();
        await session.Connect(new ConnectRequest(second, false, 3600, null, 5, 0));
        AssertHeldBy(clientId, second, entryHolders);

        await _cluster.KillSiloAsync(homeSilo);
        await AllCaughtUpAsync();

        // The next message activates the session on the first silo of its ranking, which has its newest routes.
        var message = new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("m"), Qos = 1 };
        Assert.Equal(1, await Grains.GetGrain<ITopicShardGrain>(Shard(topic)).Publish(message));
        var delivery = await gateway.NextDeliveryAsync();
        Assert.Equal(second.ConnectionId, delivery.ConnectionId);
        Assert.Equal(topic, delivery.Message.Topic);
    }

    [Fact]
    public async Task The_digest_repair_forgets_a_client_on_a_silo_the_order_to_forget_never_reached()
    {
        var gateway = Gateway();
        var clientId = NewId("forget");
        var session = Client.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        await session.Connect(new ConnectRequest(presence, false, 3600, null, 5, 0));

        // A topic whose shard grain runs on the one silo that is not an entry holder of the client: unsubscribing
        // leaves that silo nothing of the client, so it is told to forget it.
        var home = EntryHome(clientId);
        var (_, _, holders, snapshot) = Tables()[0];
        var former = _cluster.Silos.Select(s => s.SiloAddress).Single(s => !holders.IsEntryHolder(snapshot, clientId, home, s));
        var topic = Enumerable.Range(0, 1000).Select(i => $"{clientId}/t{i}").First(t => holders.HoldersOf(snapshot, Shard(t))[0].Equals(former));
        var peer = holders.HoldersOf(snapshot, Shard(topic))[1];
        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 0)]);
        var formerServices = _cluster.GetSiloServiceProvider(former);
        var formerTable = formerServices.GetRequiredService<RouteTable>();
        var stale = formerTable.Get(clientId);
        Assert.NotNull(stale);
        await session.Unsubscribe(presence.ConnectionId, [topic]);
        Assert.Null(formerTable.Get(clientId));

        // The order to forget lost on the way: the former holder still matches the exact filter.
        await formerServices.GetRequiredService<ReplicaWriter>().ApplyAsync(stale);
        Assert.Equal(1, await PublishAsync(topic));

        // The other holder of the shard does not send the client (the former holder holds none of it), and the
        // newest version, read from every silo, tells the former holder to forget it.
        var repaired = await formerServices.GetRequiredService<ReplicaSync>().RepairWithAsync(peer);
        Assert.True(repaired >= 1, $"repaired {repaired}");
        Assert.Null(formerTable.Get(clientId));
        Assert.Equal(0, await PublishAsync(topic));
    }

    // The silos in reached hold the client with its newest connection; the others hold nothing of it.
    private void AssertHeldBy(string clientId, GatewayPresence newest, IReadOnlyCollection<SiloAddress> reached)
    {
        Assert.NotEqual(_cluster.Silos.Count, reached.Count);
        foreach (var (silo, table, _, _) in Tables())
        {
            var held = table.Get(clientId);
            if (reached.Contains(silo))
            {
                Assert.True(newest.ConnectionId == held?.Presence?.ConnectionId, $"silo {silo}: expected connection {newest.ConnectionId}, holds {held?.Presence?.ConnectionId}");
            }
            else
            {
                Assert.True(held is null, $"silo {silo} holds {clientId}, of which it is no holder");
            }
        }
    }

    private Task AllCaughtUpAsync() => ShardedTestCluster.AllCaughtUpAsync(_cluster, Shards);

    private void AssertEveryHolderHoldsItsRoutes(string prefix, int exact)
    {
        foreach (var (silo, table, holders, snapshot) in Tables())
        {
            for (var i = 0; i < exact; i++)
            {
                var topic = Topic(prefix, i);
                var holds = table.Get($"{prefix}-{i}")?.Subscriptions.Any(s => s.Filter == topic) ?? false;
                Assert.True(holds == holders.HoldersOf(snapshot, Shard(topic)).Contains(silo), $"silo {silo} holding {topic}: {holds}");
            }
        }
    }

    // Every silo holds the client's entry exactly when it is one of its entry holders (the clients have no filter).
    private void AssertEveryEntryWithItsHolders(IEnumerable<string> clientIds)
    {
        foreach (var clientId in clientIds)
        {
            var home = EntryHome(clientId);
            foreach (var (silo, table, holders, snapshot) in Tables())
            {
                var entryHolder = holders.IsEntryHolder(snapshot, clientId, home, silo);
                Assert.True(entryHolder == table.Get(clientId) is not null, $"silo {silo} holding {clientId} (home {home}): {!entryHolder}");
            }
        }
    }

    // The home (or silo it is active on) that the client's entry names, as any silo holding it has it.
    private string? EntryHome(string clientId) =>
        Tables().Select(t => t.Table.Get(clientId)).First(r => r is not null) is { } routes ? RouteHolders.EntryHome(routes) : null;

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

    [Fact]
    public void A_client_this_silo_no_longer_holds_is_forgotten_without_a_tombstone_unless_a_newer_version_is_held()
    {
        var table = new RouteTable();
        Assert.True(table.Apply(new ClientRoutes("c", 5, [new Subscription("a/b", 1)], true, null)));

        // An order to forget at an older version than held (a newer change made this silo a holder again) keeps it.
        Assert.False(table.Drop("c", 4, out _));
        Assert.NotNull(table.Get("c"));

        Assert.True(table.Drop("c", 6, out var wasPersistent));
        Assert.True(wasPersistent);
        Assert.Null(table.Get("c"));
        Assert.Equal(0, table.SubscriptionCount);

        // No tombstone: the same version arrives again when this silo comes to hold the client (a catch-up).
        Assert.True(table.Apply(new ClientRoutes("c", 6, [new Subscription("a/b", 1)], true, null)));
        Assert.Equal(1, table.SubscriptionCount);
    }

    [Fact]
    public void Pruning_entries_forgets_the_clients_not_held_and_names_the_persistent_ones()
    {
        var table = new RouteTable();
        table.Apply(new ClientRoutes("kept", 1, [new Subscription("k/1", 1)], true, null));
        table.Apply(new ClientRoutes("stored", 1, [new Subscription("s/1", 1)], true, null));
        table.Apply(new ClientRoutes("clean", 1, [new Subscription("c/1", 0)], false, new GatewayPresence(null!, "g", 1)));

        var dropped = new List<string>();
        Assert.Equal(2, table.PruneEntries(r => r.ClientId == "kept", dropped));
        Assert.Equal(["stored"], dropped);
        Assert.NotNull(table.Get("kept"));
        Assert.Null(table.Get("stored"));
        Assert.Null(table.Get("clean"));
        Assert.Equal(1, table.SubscriptionCount);
        var gateways = new HashSet<string>();
        table.CollectGateways(gateways);
        Assert.Empty(gateways);
    }

    [Fact]
    public void Due_sessions_another_silo_sweeps_are_set_aside_until_the_active_silos_change()
    {
        var table = new RouteTable();
        var now = new DateTime(2026, 12, 7, 1, 0, 0, DateTimeKind.Utc);
        table.Apply(new ClientRoutes("a", 1, [], true, null, SweepAtUtc: now.AddSeconds(-3)));
        table.Apply(new ClientRoutes("b", 1, [], true, null, SweepAtUtc: now.AddSeconds(-2)));
        table.Apply(new ClientRoutes("c", 1, [], true, null, SweepAtUtc: now.AddSeconds(-1)));

        var due = new List<string>();
        table.CollectDueForSweep(now, due, 10, r => r.ClientId == "b");
        Assert.Equal(["b"], due);

        // Set aside: not looked at again, also when this silo would now take them, until the active silos change.
        due.Clear();
        table.CollectDueForSweep(now, due, 10, _ => true);
        Assert.Equal(["b"], due);

        // A newer version of a set-aside session replaces its sweep time (a reconnect: none).
        table.Apply(new ClientRoutes("c", 2, [], true, null));
        table.UnparkSweeps();
        due.Clear();
        table.CollectDueForSweep(now, due, 10, _ => true);
        Assert.Equal(["a", "b"], due);
    }

    [Fact]
    public void A_connection_through_a_dead_gateway_is_forgotten_locally_without_a_new_version()
    {
        var table = new RouteTable();
        table.Apply(new ClientRoutes("c", 7, [new Subscription("a/b", 1)], true, new GatewayPresence(null!, "g1", 5)));
        var gateways = new HashSet<string>();
        table.CollectGateways(gateways);
        Assert.Equal(["g1"], gateways);

        Assert.False(table.ForgetPresence("c", "g1", 4));
        Assert.False(table.ForgetPresence("c", "g2", 5));
        Assert.True(table.ForgetPresence("c", "g1", 5));

        gateways.Clear();
        table.CollectGateways(gateways);
        Assert.Empty(gateways);
        var routes = table.Get("c")!;
        Assert.Null(routes.Presence);
        Assert.Equal(7, routes.Version);
        Assert.Equal(1, table.SubscriptionCount);
    }
}
