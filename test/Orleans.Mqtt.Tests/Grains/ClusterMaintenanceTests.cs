using Xunit;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Tests.Storage;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// What keeps a cluster whole: a silo that joins catches up before it matches, a change one replica missed is
/// repaired by the digest comparison, a dead gateway's sessions go offline with their wills, and ownership records
/// follow connections. Each test builds its own cluster, since it adds silos or relies on timing settings.
/// </summary>
public sealed class ClusterMaintenanceTests : IAsyncLifetime
{
    private const int Shards = 8;
    private readonly List<RecordingGateway> _gateways = [];

    // Each silo's storage by silo name, kept past the silo's stop: a silo restarted under its name finds it again, as a
    // silo restarted on its data directory does (with a new address: a new generation, often a new IP).
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, SiloLocalGrainStorage> _storages = new();
    private InProcessTestCluster _cluster = null!;

    // When set, the next silo started takes this name instead of its own.
    private string? _nameOfNextSilo;

    private IClusterClient Client => _cluster.Client;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) =>
        {
            // Storage that stays on its silo, like the FASTER store on a silo's disk.
            silo.Services.AddGrainStorage(MqttGrainStorage.Name, (services, _) =>
            {
                var copier = services.GetRequiredService<DeepCopier>();
                return _storages.AddOrUpdate(services.GetRequiredService<ILocalSiloDetails>().Name, _ => new SiloLocalGrainStorage(copier), (_, previous) => new SiloLocalGrainStorage(copier, previous));
            });
            silo.AddMqttGrains(o =>
            {
                RouteShardingFromEnvironment.Apply(o);
                o.TopicShards = Shards;
                o.SessionSweepInterval = TimeSpan.FromMilliseconds(200);
                o.GatewayTimeout = TimeSpan.FromSeconds(3);
                o.ReplicaRepairInterval = TimeSpan.FromHours(1);
                o.ReplicaTombstoneLifetime = TimeSpan.FromHours(4);
            });

            // One ownership store for the whole in-process cluster, as etcd is for a real one.
            silo.Services.AddSingleton<ISessionOwnershipStore>(SharedOwnership);
            if (Interlocked.Exchange(ref _nameOfNextSilo, null) is { } name)
            {
                silo.Services.PostConfigure<Orleans.Configuration.SiloOptions>(o => o.SiloName = name);
            }
        });
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
    }

    private static readonly InMemorySessionOwnershipStore SharedOwnership = new();

    [Fact]
    public async Task A_silo_that_joins_catches_up_with_every_route_and_retained_message_before_it_is_ready()
    {
        var gateway = Gateway();
        await using var heartbeats = Heartbeats(gateway);
        var prefix = NewId("join");
        for (var i = 0; i < 40; i++)
        {
            var session = Client.GetGrain<IClientSessionGrain>($"{prefix}-{i}");
            var presence = gateway.NewConnection();
            await session.Connect(new ConnectRequest(presence, i % 2 == 0, i % 2 == 0 ? 0u : 3600u, null, 5, 0));
            await session.Subscribe(presence.ConnectionId, [new Subscription($"{prefix}/{i}/#", 1)]);
        }

        for (var i = 0; i < 10; i++)
        {
            await Shard($"{prefix}/r{i}").Publish(new MqttMessage { Topic = $"{prefix}/r{i}", Payload = Encoding.UTF8.GetBytes("r"), Qos = 1, Retain = true });
        }

        var joined = await _cluster.StartAdditionalSiloAsync();
        var table = _cluster.GetSiloServiceProvider(joined.SiloAddress).GetRequiredService<RouteTable>();

        Assert.True(table.IsReady);
        for (var i = 0; i < 40; i++)
        {
            var routes = table.Get($"{prefix}-{i}");
            Assert.NotNull(routes);
            Assert.Equal($"{prefix}/{i}/#", Assert.Single(routes.Subscriptions).Filter);
            Assert.NotNull(routes.Presence);
        }

        for (var i = 0; i < 10; i++)
        {
            Assert.NotEqual(0, table.RetainedVersion($"{prefix}/r{i}"));
        }

        // Same digest as the silos that saw every change as it happened.
        var first = _cluster.GetSiloServiceProvider(_cluster.Silos[0].SiloAddress).GetRequiredService<RouteTable>();
        Assert.Equal(first.Digest(), table.Digest());
    }

    [Fact]
    public async Task A_change_one_replica_missed_is_repaired_by_comparing_digests()
    {
        var tables = _cluster.Silos.Select(s => _cluster.GetSiloServiceProvider(s.SiloAddress).GetRequiredService<RouteTable>()).ToList();

        // With routes sharded by topic, a silo that sees the active silos change copies the persistent sessions it is
        // an entry holder of in the background: silo 1 must not be one of this client's, or that copy, not the repair,
        // may bring it over.
        var services = _cluster.GetSiloServiceProvider(_cluster.Silos[1].SiloAddress);
        var snapshot = services.GetRequiredService<IClusterMembershipService>().CurrentSnapshot;
        var holders = services.GetRequiredService<RouteHolders>();
        string clientId;
        do
        {
            clientId = NewId("repair");
        }
        while (holders.IsEntryHolder(snapshot, clientId, null, _cluster.Silos[1].SiloAddress));

        // Only silo 0 hears of the subscription and, later, of a retained message and of another client's end.
        var gone = NewId("gone");
        foreach (var t in tables)
        {
            t.Apply(new ClientRoutes(gone, 1, [new Subscription("x/y", 1)], true, null));
        }

        tables[0].Apply(new ClientRoutes(clientId, 10, [new Subscription("repair/#", 1)], true, null));
        tables[0].ApplyRetained(new RetainedUpdate("repair/r", 10, new MqttMessage { Topic = "repair/r", Payload = new byte[] { 7 } }));
        tables[0].Apply(new ClientRoutes(gone, 2, [], false, null));
        Assert.Null(tables[1].Get(clientId));
        Assert.NotEqual(tables[0].Digest(), tables[1].Digest());

        var sync = services.GetRequiredService<ReplicaSync>();
        var repaired = await sync.RepairOnceAsync();

        Assert.Equal(3, repaired);
        Assert.Equal("repair/#", Assert.Single(tables[1].Get(clientId)!.Subscriptions).Filter);
        Assert.Equal(10, tables[1].RetainedVersion("repair/r"));
        Assert.Null(tables[1].Get(gone));
        Assert.Equal(tables[0].Digest(), tables[1].Digest());
        Assert.Equal(0, await sync.RepairOnceAsync());
    }

    [Fact]
    public async Task The_sessions_of_a_gateway_that_stops_reporting_go_offline_and_their_wills_are_published()
    {
        var live = Gateway();
        var dying = Gateway();
        await using var heartbeats = Heartbeats(live);

        var topic = NewId("will");
        var watcher = Client.GetGrain<IClientSessionGrain>(NewId("watcher"));
        var watcherConnection = live.NewConnection();
        await watcher.Connect(new ConnectRequest(watcherConnection, true, 0, null, 5, 0));
        await watcher.Subscribe(watcherConnection.ConnectionId, [new Subscription(topic, 0)]);

        var persistentId = NewId("persistent");
        var persistent = Client.GetGrain<IClientSessionGrain>(persistentId);
        var persistentConnection = dying.NewConnection();
        var will = new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("gone"), Qos = 0 };
        await persistent.Connect(new ConnectRequest(persistentConnection, false, 3600, will, 5, 0));
        await persistent.Subscribe(persistentConnection.ConnectionId, [new Subscription(persistentId + "/in", 1)]);
        Assert.NotNull((await SharedOwnership.ReadAsync(persistentId)).Owner);

        // The dying gateway never reports in: after the gateway timeout its session is offline and the will is out.
        var delivered = await live.NextDeliveryAsync();
        Assert.Equal(watcherConnection.ConnectionId, delivered.ConnectionId);
        Assert.Equal("gone", Encoding.UTF8.GetString(delivered.Message.Payload.Span));
        Assert.All(Tables(), t => Assert.Null(t.Get(persistentId)!.Presence));
        Assert.Null((await SharedOwnership.ReadAsync(persistentId)).Owner);

        // The persistent session keeps queueing and hands the message over when the client comes back elsewhere.
        await Shard(persistentId + "/in").Publish(new MqttMessage { Topic = persistentId + "/in", Payload = Encoding.UTF8.GetBytes("queued"), Qos = 1 });
        var back = live.NewConnection();
        var result = await persistent.Connect(new ConnectRequest(back, false, 3600, null, 5, 0));
        Assert.True(result.SessionPresent);
        var resent = Assert.Single(result.Resend);
        Assert.Equal(back.ConnectionId, resent.ConnectionId);
        Assert.Equal("queued", Encoding.UTF8.GetString(resent.Message.Payload.Span));
        Assert.Equal(live.Id, (await SharedOwnership.ReadAsync(persistentId)).Owner!.GatewayId);

        // A gateway declared dead that reports in again is told to close its connections first.
        Assert.False(await Client.GetGrain<IGatewayDirectoryGrain>(0).Heartbeat(new GatewayReport(dying.Id)));
        Assert.True(await Client.GetGrain<IGatewayDirectoryGrain>(0).Heartbeat(new GatewayReport(dying.Id)));
    }

    [Fact]
    public async Task A_session_whose_activation_lost_its_state_is_rebuilt_from_the_replica_with_its_live_connection()
    {
        var gateway = Gateway();
        await using var heartbeats = Heartbeats(gateway);
        var clientId = NewId("rebuilt");
        var session = Client.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        await session.Connect(new ConnectRequest(presence, true, 0, null, 5, 0));
        await session.Subscribe(presence.ConnectionId, [new Subscription(clientId + "/t", 1)]);

        // A clean session lives only in memory (the idle collection leaves it alone while connected): losing the
        // activation loses it, as a silo crash would.
        await Client.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);
        Assert.Contains(await Client.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics(), s => s.GrainId == session.GetGrainId());
        await _cluster.DeactivateAsync(session);
        var routed = await Shard(clientId + "/t").Publish(new MqttMessage { Topic = clientId + "/t", Payload = Encoding.UTF8.GetBytes("after"), Qos = 1 });

        Assert.Equal(1, routed);
        var delivered = await gateway.NextDeliveryAsync();
        Assert.Equal(presence.ConnectionId, delivered.ConnectionId);
        Assert.Equal("after", Encoding.UTF8.GetString(delivered.Message.Payload.Span));
    }

    [Fact]
    public async Task A_silo_that_stops_gracefully_hands_its_sessions_over_with_their_queues_and_connections()
    {
        var gateway = Gateway();
        await using var heartbeats = Heartbeats(gateway);
        var prefix = NewId("handover");
        var connected = new List<(IClientSessionGrain Session, GatewayPresence Presence, string Topic)>();
        for (var i = 0; i < 12; i++)
        {
            // Started on each silo in turn (by the placement hint a hand-over uses; the default placement may put them
            // all on one silo), so that both silos hold sessions.
            var session = Client.GetGrain<IClientSessionGrain>($"{prefix}-{i}");
            var presence = gateway.NewConnection();
            using (new PlacementHintScope(_cluster.Silos[i / 2 % 2].SiloAddress))
            {
                await session.Connect(new ConnectRequest(presence, false, 3600, null, 5, 0));
            }

            await session.Subscribe(presence.ConnectionId, [new Subscription($"{prefix}/{i}", 1)]);
            if (i % 2 == 0)
            {
                // Offline with a queued message: only the stored state knows it.
                await session.Disconnect(presence.ConnectionId, DisconnectKind.Normal);
                await Shard($"{prefix}/{i}").Publish(new MqttMessage { Topic = $"{prefix}/{i}", Payload = Encoding.UTF8.GetBytes($"queued-{i}"), Qos = 1 });
            }
            else
            {
                connected.Add((session, presence, $"{prefix}/{i}"));
            }
        }

        var stopping = _cluster.Silos[1];
        var ids = Enumerable.Range(0, 12).Select(i => Client.GetGrain<IClientSessionGrain>($"{prefix}-{i}").GetGrainId()).ToArray();
        var handedOver = ids.Where(id => _storages[stopping.Name].Stored<SessionState>("session", id) is not null).ToList();
        Assert.NotEmpty(handedOver);
        await _cluster.StopSiloAsync(stopping);

        // A session handed over makes its new silo its home (its storage holds it now), so that a later activation
        // goes there too. The call only makes sure the handed-over activation has started; it changes nothing.
        var table = _cluster.GetSiloServiceProvider(_cluster.Silos[0].SiloAddress).GetRequiredService<RouteTable>();
        for (var i = 0; i < 12; i += 2)
        {
            await Client.GetGrain<IClientSessionGrain>($"{prefix}-{i}").IsInboundQos2Pending(1);
            Assert.Equal(_cluster.Silos[0].Name, table.Get($"{prefix}-{i}")?.Home);
        }

        for (var i = 0; i < 12; i += 2)
        {
            var result = await Client.GetGrain<IClientSessionGrain>($"{prefix}-{i}").Connect(new ConnectRequest(gateway.NewConnection(), false, 3600, null, 5, 0));
            Assert.True(result.SessionPresent, $"session {i} lost");
            Assert.Equal($"queued-{i}", Encoding.UTF8.GetString(Assert.Single(result.Resend).Message.Payload.Span));
        }

        // Connected sessions went on with their connection: a message to them is pushed to it, no reconnect needed.
        foreach (var (_, presence, topic) in connected)
        {
            await Shard(topic).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("after"), Qos = 1 });
            var delivered = await gateway.NextDeliveryAsync();
            Assert.Equal(presence.ConnectionId, delivered.ConnectionId);
        }

        // The stopped silo kept its copies (were a hand-over to fail, the session would still be there when the silo
        // comes back). Back on its storage, it finds them stale, their routes naming the other silo with a newer
        // version, and drops them before it serves anyone; the sessions stay whole on their new home.
        Assert.All(handedOver, id => Assert.True(_storages[stopping.Name].Contains("session", id)));

        // Two more copies without routes: of a session that ended and would have expired by now (it goes), and of one
        // the routes do not know that is still connected, which never expires while it is (it stays).
        var ended = Client.GetGrain<IClientSessionGrain>(NewId("ended")).GetGrainId();
        var unknown = Client.GetGrain<IClientSessionGrain>(NewId("unknown")).GetGrainId();
        _storages[stopping.Name].Replace("session", ended, new SessionState { SessionExpiryInterval = 60, DisconnectedAtUtc = DateTime.UtcNow.AddMinutes(-2), RouteVersion = 1 });
        _storages[stopping.Name].Replace("session", unknown, new SessionState { SessionExpiryInterval = 60, RouteVersion = 1 });

        var back = await _cluster.StartSiloAsync(stopping.InstanceNumber, _cluster.Options);
        try
        {
            Assert.Equal(stopping.Name, back.Name);
            Assert.All(ids, id => Assert.False(_storages[stopping.Name].Contains("session", id)));
            Assert.All(handedOver, id => Assert.True(_storages[_cluster.Silos[0].Name].Contains("session", id)));
            Assert.False(_storages[stopping.Name].Contains("session", ended));
            Assert.True(_storages[stopping.Name].Contains("session", unknown));
        }
        finally
        {
            await _cluster.StopSiloAsync(back);
        }
    }

    [Fact]
    public async Task A_session_handed_over_with_a_message_in_flight_closes_its_connection_so_the_client_resumes_and_gets_it_again()
    {
        var gateway = Gateway();
        await using var heartbeats = Heartbeats(gateway);
        var clientId = NewId("inflight");
        var topic = clientId + "/t";
        var stopping = _cluster.Silos[1];
        var session = Client.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        using (new PlacementHintScope(stopping.SiloAddress))
        {
            await session.Connect(new ConnectRequest(presence, false, 3600, null, 5, 0));
        }

        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);
        Assert.Equal(1, await Shard(topic).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("m0"), Qos = 1 }));

        // Pushed and not acknowledged: in flight when the silo stops. Had the push been lost with the stopping silo's
        // outbox, nothing would send it again on this connection [MQTT-4.4.0-1], and later messages would overtake it.
        Assert.Equal(presence.ConnectionId, (await gateway.NextDeliveryAsync()).ConnectionId);
        await _cluster.StopSiloAsync(stopping);
        await session.IsInboundQos2Pending(1);

        Assert.Equal((presence.ConnectionId, CloseReason.SessionFailedOver.DisconnectReasonCode()), await gateway.NextDisconnectAsync());
        await session.Disconnect(presence.ConnectionId, DisconnectKind.ConnectionLost);
        var resumed = await session.Connect(new ConnectRequest(gateway.NewConnection(), false, 3600, null, 5, 0));
        Assert.True(resumed.SessionPresent);
        var again = Assert.Single(resumed.Resend);
        Assert.True(again.Dup);
        Assert.Equal("m0", Encoding.UTF8.GetString(again.Message.Payload.Span));
    }

    [Fact]
    public async Task The_cluster_statistics_add_up_the_gateways_reports_and_each_silos_share_also_after_a_silo_leaves()
    {
        var gateway = Gateway();
        var prefix = NewId("stats");
        for (var i = 0; i < 12; i++)
        {
            // Six persistent sessions offline, homed on each silo in turn, and six clean ones connected (no home).
            var session = Client.GetGrain<IClientSessionGrain>($"{prefix}-{i}");
            var presence = gateway.NewConnection();
            using (new PlacementHintScope(_cluster.Silos[i / 2 % 2].SiloAddress))
            {
                await session.Connect(new ConnectRequest(presence, i % 2 == 1, i % 2 == 0 ? 3600u : 0u, null, 5, 0));
            }

            await session.Subscribe(presence.ConnectionId, [new Subscription($"{prefix}/{i}", 1), new Subscription($"{prefix}/all", 0)]);
            if (i % 2 == 0)
            {
                await session.Disconnect(presence.ConnectionId, DisconnectKind.Normal);
            }
        }

        var directory = Client.GetGrain<IGatewayDirectoryGrain>(0);
        var report = new GatewayReport(gateway.Id, 1, DateTime.UtcNow, 6, new TrafficCounters(40, 30, 2, 4000, 3000));
        Assert.True(await directory.Heartbeat(report));
        var stats = await directory.GetClusterStats();

        Assert.Equal(12, stats.Totals.Sessions);
        Assert.Equal(24, stats.Totals.Subscriptions);
        Assert.Equal(Tables().First().ClientCount, stats.Totals.Sessions);
        Assert.Equal(2, stats.Totals.Silos);
        Assert.All(stats.Silos, s => Assert.True(s.Sessions > 0, $"{s.Silo} counts no session"));
        Assert.Equal(6, stats.Totals.ConnectedClients);
        Assert.Equal(report.Traffic, stats.Totals.Traffic);
        Assert.Equal(gateway.Id, Assert.Single(stats.Gateways).GatewayId);

        // One silo goes: its persistent sessions move to the other, which now counts every session.
        await _cluster.StopSiloAsync(_cluster.Silos[1]);
        Assert.True(await directory.Heartbeat(report with { Traffic = new TrafficCounters(41, 30, 2, 4100, 3000) }));
        stats = await directory.GetClusterStats();

        Assert.Equal(1, stats.Totals.Silos);
        Assert.Equal(12, stats.Totals.Sessions);
        Assert.Equal(24, stats.Totals.Subscriptions);
        Assert.Equal(41, stats.Totals.Traffic.MessagesReceived);
    }

    [Fact]
    public async Task An_offline_session_collected_while_idle_comes_back_on_the_silo_that_stores_it_with_its_queue()
    {
        var gateway = Gateway();
        await using var heartbeats = Heartbeats(gateway);
        var prefix = NewId("idle");
        await OfflineSessionsWithQueuedMessagesAsync(gateway, prefix);

        // What the idle collection does to an offline session after its collection age, on every silo at once.
        await Client.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);

        // The next activation of each must find the stored state wherever the call that wakes it comes from: here
        // from each silo in turn (placement prefers the calling silo). On any silo but its own the session would be
        // rebuilt from the replica without its queue.
        await AssertQueuedMessagesResentAsync(gateway, prefix, i => SiloGrainFactory(i % 2));
    }

    [Fact]
    public async Task A_silo_restarted_on_its_storage_under_a_new_address_still_serves_the_offline_sessions_it_stores()
    {
        var gateway = Gateway();
        await using var heartbeats = Heartbeats(gateway);
        var prefix = NewId("restart");
        var restarting = _cluster.Silos[1];
        await OfflineSessionsWithQueuedMessagesAsync(gateway, prefix, restarting.SiloAddress);

        var storage = _storages[restarting.Name];
        var ids = Enumerable.Range(0, 12).Select(i => Client.GetGrain<IClientSessionGrain>($"{prefix}-{i}").GetGrainId()).ToArray();
        Assert.All(ids, id => Assert.True(storage.Contains("session", id)));

        // Idle offline sessions are not in memory, so a graceful stop has nothing to hand over: they stay on the
        // silo's storage, and the silo comes back on it with a new address (a new generation; in Kubernetes often a
        // new pod IP too).
        await Client.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);
        var restarted = (await _cluster.RestartSiloAsync(restarting))!;
        Assert.NotEqual(restarting.SiloAddress, restarted.SiloAddress);
        await _cluster.WaitForLivenessToStabilizeAsync();

        // Woken through the other silo, each session must still start where its queue is stored.
        await AssertQueuedMessagesResentAsync(gateway, prefix, _ => SiloGrainFactory(0));
    }

    [Fact]
    public async Task A_silo_that_starts_under_the_name_of_a_live_silo_is_refused()
    {
        var taken = _cluster.Silos[1];
        _nameOfNextSilo = taken.Name;

        var refused = await Assert.ThrowsAnyAsync<Exception>(() => _cluster.StartAdditionalSiloAsync());

        Assert.Contains($"silo name '{taken.Name}' is already taken", refused.ToString(), StringComparison.Ordinal);
        Assert.Equal(2, (await Client.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Count);
    }

    [Fact]
    public async Task A_stored_copy_older_than_the_routes_does_not_bring_back_its_old_queue_or_will()
    {
        var gateway = Gateway();
        await using var heartbeats = Heartbeats(gateway);
        var clientId = NewId("stale");
        var topic = clientId + "/t";
        var session = Client.GetGrain<IClientSessionGrain>(clientId);
        var management = Client.GetGrain<IManagementGrain>(0);

        // Offline with a queued message and a delayed will in its stored state.
        var presence = gateway.NewConnection();
        var will = new MqttMessage { Topic = clientId + "/will", Payload = Encoding.UTF8.GetBytes("old will"), Qos = 0 };
        await session.Connect(new ConnectRequest(presence, false, 3600, will, 5, 0, WillDelayInterval: 3600));
        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);
        await session.Disconnect(presence.ConnectionId, DisconnectKind.ConnectionLost);
        await Shard(topic).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("old"), Qos = 1 });
        var storage = _storages[Tables().First().Get(clientId)!.Home!];
        var old = storage.Stored<SessionState>("session", session.GetGrainId())!;
        Assert.Equal((1, true), (old.Queue.Count, old.PendingWill is not null));

        // The session goes on: the client comes back, takes the message and leaves for good.
        var back = gateway.NewConnection();
        var resumed = await session.Connect(new ConnectRequest(back, false, 3600, null, 5, 0));
        await session.Acknowledge(back.ConnectionId, Assert.Single(resumed.Resend).PacketId, OutboundAck.PubAck);
        await session.Disconnect(back.ConnectionId, DisconnectKind.Normal);

        // Its silo's storage now holds the older copy again: what a silo finds that was away (crashed, or restored
        // from a backup) while the session went on elsewhere. Older than the routes, the copy must not bring back
        // the message the client already has, nor a will the client replaced; the routes' subscriptions stay.
        storage.Replace("session", session.GetGrainId(), old);
        await management.ForceActivationCollection(TimeSpan.Zero);
        Assert.DoesNotContain(await management.GetDetailedGrainStatistics(), s => s.GrainId == session.GetGrainId());
        Assert.False(await session.IsInboundQos2Pending(1));
        var rewritten = storage.Stored<SessionState>("session", session.GetGrainId())!;
        Assert.Equal((0, 0, false), (rewritten.Queue.Count, rewritten.Inflight.Count, rewritten.PendingWill is not null));

        var result = await session.Connect(new ConnectRequest(gateway.NewConnection(), false, 3600, null, 5, 0));
        Assert.True(result.SessionPresent);
        Assert.Empty(result.Resend);
        Assert.Equal(topic, Assert.Single(Tables().First().Get(clientId)!.Subscriptions).Filter);
    }

    [Fact]
    public async Task A_connected_persistent_session_collected_while_idle_comes_back_with_its_connection_receive_maximum_and_ownership()
    {
        var gateway = Gateway();
        await using var heartbeats = Heartbeats(gateway);
        var clientId = NewId("idle-connected");
        var topic = clientId + "/t";
        var session = SiloGrainFactory(1).GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        await session.Connect(new ConnectRequest(presence, true, 3600, null, 5, ReceiveMaximum: 1));
        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);
        var owner = await SharedOwnership.ReadAsync(clientId);
        Assert.Equal(presence.ConnectionId, owner.Owner?.ConnectionId);

        // Connected, but idle: the collection takes it (a clean session would stay).
        var management = Client.GetGrain<IManagementGrain>(0);
        await management.ForceActivationCollection(TimeSpan.Zero);
        Assert.DoesNotContain(await management.GetDetailedGrainStatistics(), s => s.GrainId == session.GetGrainId());

        // Messages wake it on its home with the live connection, and the client's Receive Maximum of 1 still holds:
        // one message in flight, the other queued (both stored before the publishes returned).
        await SiloGrainFactory(0).GetGrain<ITopicShardGrain>(Orleans.Mqtt.Topics.MqttTopic.ShardOf(topic, Shards))
            .PublishBatch([new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("one"), Qos = 1 }, new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("two"), Qos = 1 }]);
        var first = await gateway.NextDeliveryAsync();
        Assert.Equal((presence.ConnectionId, "one"), (first.ConnectionId, Encoding.UTF8.GetString(first.Message.Payload.Span)));
        var stored = _storages[Tables().First().Get(clientId)!.Home!].Stored<SessionState>("session", session.GetGrainId())!;
        Assert.Equal((1, 1), (stored.Inflight.Count, stored.Queue.Count));

        // Collected again between the message and its acknowledgement: the acknowledgement releases the next one.
        await management.ForceActivationCollection(TimeSpan.Zero);
        await session.Acknowledge(presence.ConnectionId, first.PacketId, OutboundAck.PubAck);
        var second = await gateway.NextDeliveryAsync();
        Assert.Equal((presence.ConnectionId, "two"), (second.ConnectionId, Encoding.UTF8.GetString(second.Message.Payload.Span)));

        // And once more before the client leaves: its ownership record is released, not left to the gateway's lease.
        await management.ForceActivationCollection(TimeSpan.Zero);
        await session.Disconnect(presence.ConnectionId, DisconnectKind.Normal);
        Assert.Null((await SharedOwnership.ReadAsync(clientId)).Owner);
    }

    /// <summary>
    /// Twelve persistent sessions <c>{prefix}-{i}</c>, each offline with one QoS 1 message queued; started on
    /// <paramref name="silo"/> (by the placement hint a hand-over uses), or where placement puts them.
    /// </summary>
    private async Task OfflineSessionsWithQueuedMessagesAsync(RecordingGateway gateway, string prefix, SiloAddress? silo = null)
    {
        for (var i = 0; i < 12; i++)
        {
            var session = Client.GetGrain<IClientSessionGrain>($"{prefix}-{i}");
            var presence = gateway.NewConnection();
            if (silo is not null)
            {
                RequestContext.Set(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey, silo);
            }

            await session.Connect(new ConnectRequest(presence, false, 3600, null, 5, 0));
            RequestContext.Remove(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey);
            await session.Subscribe(presence.ConnectionId, [new Subscription($"{prefix}/{i}", 1)]);
            await session.Disconnect(presence.ConnectionId, DisconnectKind.Normal);
            await Shard($"{prefix}/{i}").Publish(new MqttMessage { Topic = $"{prefix}/{i}", Payload = Encoding.UTF8.GetBytes($"queued-{i}"), Qos = 1 });
        }
    }

    /// <summary>Each of those twelve clients comes back through the factory given for it and gets its message.</summary>
    private static async Task AssertQueuedMessagesResentAsync(RecordingGateway gateway, string prefix, Func<int, IGrainFactory> factory)
    {
        for (var i = 0; i < 12; i++)
        {
            var result = await factory(i).GetGrain<IClientSessionGrain>($"{prefix}-{i}").Connect(new ConnectRequest(gateway.NewConnection(), false, 3600, null, 5, 0));
            Assert.True(result.SessionPresent, $"session {i} lost");
            Assert.Equal($"queued-{i}", Encoding.UTF8.GetString(Assert.Single(result.Resend).Message.Payload.Span));
        }
    }

    private IEnumerable<RouteTable> Tables() =>
        _cluster.Silos.Select(s => _cluster.GetSiloServiceProvider(s.SiloAddress).GetRequiredService<RouteTable>());

    /// <summary>Calls made through this factory start on the given silo, whose placement then prefers itself.</summary>
    private IGrainFactory SiloGrainFactory(int silo) => _cluster.GetSiloServiceProvider(_cluster.Silos[silo].SiloAddress).GetRequiredService<IGrainFactory>();

    private ITopicShardGrain Shard(string topic) => Client.GetGrain<ITopicShardGrain>(Orleans.Mqtt.Topics.MqttTopic.ShardOf(topic, Shards));

    private RecordingGateway Gateway()
    {
        var gateway = new RecordingGateway(Client);
        _gateways.Add(gateway);
        return gateway;
    }

    /// <summary>Reports the gateway alive every 200 ms, as a running gateway does, until disposed.</summary>
    private GatewayHeartbeats Heartbeats(RecordingGateway gateway) => new(Client.GetGrain<IGatewayDirectoryGrain>(0), gateway.Id);

    private sealed class GatewayHeartbeats : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _beating;

        public GatewayHeartbeats(IGatewayDirectoryGrain directory, string gatewayId) => _beating = BeatAsync(directory, gatewayId, _stop.Token);

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _beating;
            _stop.Dispose();
        }

        private static async Task BeatAsync(IGatewayDirectoryGrain directory, string gatewayId, CancellationToken cancellationToken)
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                await directory.Heartbeat(new GatewayReport(gatewayId));
                await Task.Delay(200, CancellationToken.None);
            }
        }
    }

    private static string NewId(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..10];
}
