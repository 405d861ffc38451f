using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;
using Orleans.Mqtt.Tests.Storage;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using Orleans.TestingHost;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// A persistent session's state on its home silo and one replica silo (<c>Mqtt:SessionReplicas</c> 2): when the home
/// is killed (not stopped: nothing is handed over), the session comes back on a replica silo with its queue, in-flight
/// messages, inbound QoS 2 ids and will; a copy that went stale while its silo was away does not bring back what the
/// client already acknowledged; a session whose every copy is gone is started afresh with Session Present 0; and an idle
/// session gets its lost copy back when the membership changes (<see cref="SessionRereplicator"/>), so it survives the
/// loss of a second silo.
/// Each test builds its own three-silo cluster, since it kills silos.
/// </summary>
public sealed class SessionFailoverTests : IAsyncLifetime
{
    private const int Shards = 8;
    private const int MaxInflight = 2;
    private static readonly InMemorySessionOwnershipStore SharedOwnership = new();

    // Each silo's storage by silo name, kept past a kill: a silo restarted under its name finds its records again.
    private readonly ConcurrentDictionary<string, SiloLocalGrainStorage> _storages = new();
    private readonly List<RecordingGateway> _gateways = [];
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _counters = new();

    // Released at every counted measurement: a test waiting for something a counter announces looks again then.
    private readonly SemaphoreSlim _counted = new(0);

    // The meter factories of this cluster's silos: other test classes' clusters run in the same process.
    private readonly ConcurrentDictionary<object, bool> _scopes = new();
    private InProcessTestCluster _cluster = null!;

    private IClusterClient Client => _cluster.Client;

    // Calls start on the first silo, which is never killed: the test client would first have to notice that the
    // gateway it used is gone.
    private IGrainFactory Grains => _cluster.GetSiloServiceProvider(_cluster.Silos[0].SiloAddress).GetRequiredService<IGrainFactory>();

    public async Task InitializeAsync()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == MqttMetrics.MeterName && instrument.Name is "mqtt.sessions.failed_over" or "mqtt.sessions.lost" or "mqtt.sessions.rereplicated" or "mqtt.sessions.stale_copies_dropped")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Meter.Scope is { } scope && _scopes.ContainsKey(scope))
            {
                _counters.AddOrUpdate(instrument.Name, value, (_, n) => n + value);
                _counted.Release();
            }
        });
        _listener.Start();

        var builder = new InProcessTestClusterBuilder(3);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddGrainStorage(MqttGrainStorage.Name, (services, _) =>
            {
                var copier = services.GetRequiredService<DeepCopier>();
                return _storages.AddOrUpdate(services.GetRequiredService<ILocalSiloDetails>().Name, _ => new SiloLocalGrainStorage(copier), (_, previous) => new SiloLocalGrainStorage(copier, previous));
            });
            silo.AddMqttGrains(o =>
            {
                RouteShardingFromEnvironment.Apply(o);
                o.TopicShards = Shards;
                o.MaxInflightMessages = MaxInflight;
                o.SessionReplicas = 2;
                o.GatewayTimeout = TimeSpan.FromHours(1);
                o.ReplicaRepairInterval = TimeSpan.FromHours(1);
                o.ReplicaTombstoneLifetime = TimeSpan.FromHours(4);
            });
            silo.Services.AddSingleton<ISessionOwnershipStore>(SharedOwnership);

            // A killed silo is declared dead within a few seconds.
            silo.Services.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromSeconds(1);
                o.NumMissedProbesLimit = 2;
                o.NumVotesForDeathDeclaration = 1;
                o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
            });
        });
        _cluster = builder.Build();
        await _cluster.DeployAsync();
        foreach (var silo in _cluster.Silos)
        {
            _scopes[_cluster.GetSiloServiceProvider(silo.SiloAddress).GetRequiredService<IMeterFactory>()] = true;
        }
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
        _listener.Dispose();
        _counted.Dispose();
    }

    [Fact]
    public async Task A_killed_home_silo_loses_no_queued_or_inflight_message_nor_inbound_qos2_id_nor_will()
    {
        var gateway = Gateway();
        var home = _cluster.Silos[1];
        var clientId = NewId("failover");
        var topic = clientId + "/t";
        var session = Grains.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        var will = new MqttMessage { Topic = clientId + "/will", Payload = Encoding.UTF8.GetBytes("will"), Qos = 1 };
        using (new PlacementHintScope(home.SiloAddress))
        {
            Assert.False((await session.Connect(new ConnectRequest(presence, false, 3600, will, 5, 0))).SessionPresent);
        }

        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);
        Assert.Equal(home.Name, (await RoutesAsync(clientId))!.Home);

        // Ten messages acknowledged to their publisher: two in flight to the client, eight queued behind them.
        const int Count = 10;
        for (var i = 0; i < Count; i++)
        {
            Assert.Equal(1, await Shard(topic).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes($"m{i}"), Qos = 1 }));
        }

        await session.AddInboundQos2(presence.ConnectionId, 7);

        await KillAsync(home);

        // The connection is still there (its gateway is alive) and loses it now: the will survived with the session.
        var lostWill = await session.Disconnect(presence.ConnectionId, DisconnectKind.ConnectionLost);
        Assert.Equal("will", Encoding.UTF8.GetString(Assert.IsType<MqttMessage>(lostWill).Payload.Span));
        Assert.Equal(1, _counters.GetValueOrDefault("mqtt.sessions.failed_over"));

        // The dead home had pushed two messages, or died before it could: the session asked the gateway to close the
        // connection it recovered with, so that the client resumes and gets them again rather than waiting for them.
        Assert.Equal((presence.ConnectionId, CloseReason.SessionFailedOver.DisconnectReasonCode()), await gateway.NextDisconnectAsync());
        var newHome = (await RoutesAsync(clientId))!.Home;
        Assert.NotNull(newHome);
        Assert.NotEqual(home.Name, newHome);

        // The client's re-sent QoS 2 PUBLISH is known: it is not routed a second time.
        Assert.True(await session.IsInboundQos2Pending(7));

        // The client comes back for the messages, two at a time (its in-flight window): the two in flight when the home
        // died again with DUP, then the queued ones in order. Each CONNECT re-sends what the last one pushed, so
        // nothing here depends on a push reaching the test's gateway.
        var received = new List<string>();
        var first = true;
        while (received.Count < Count)
        {
            var back = gateway.NewConnection();
            var resumed = await session.Connect(new ConnectRequest(back, false, 3600, null, 5, 0));
            Assert.True(resumed.SessionPresent);
            Assert.Equal(MaxInflight, resumed.Resend.Length);
            Assert.True(!first || resumed.Resend.All(d => d.Dup));
            first = false;
            foreach (var delivery in resumed.Resend)
            {
                received.Add(Encoding.UTF8.GetString(delivery.Message.Payload.Span));
                await session.Acknowledge(back.ConnectionId, delivery.PacketId, OutboundAck.PubAck);
            }

            await session.Disconnect(back.ConnectionId, DisconnectKind.Normal);
        }

        Assert.Equal(Enumerable.Range(0, Count).Select(i => $"m{i}"), received);
        Assert.Equal(0, _counters.GetValueOrDefault("mqtt.sessions.lost"));
    }

    [Fact]
    public async Task A_clean_session_rebuilt_after_its_silo_was_killed_releases_the_ownership_record_of_its_connection()
    {
        var gateway = Gateway();
        var home = _cluster.Silos[1];
        var clientId = NewId("clean");
        var session = Grains.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        using (new PlacementHintScope(home.SiloAddress))
        {
            await session.Connect(new ConnectRequest(presence, true, 0, null, 5, 0));
        }

        var (owner, revision) = await SharedOwnership.ReadAsync(clientId);
        Assert.Equal(presence.ConnectionId, owner?.ConnectionId);
        Assert.NotEqual(0, revision);

        // A clean session's state, its owner revision with it, lived only in the killed silo's memory: the next call
        // rebuilds it elsewhere from its routes, which name the connection. Its normal end releases the record.
        await KillAsync(home);
        await session.Disconnect(presence.ConnectionId, DisconnectKind.Normal);
        var (after, afterRevision) = await SharedOwnership.ReadAsync(clientId);
        Assert.Null(after);
        Assert.Equal(0, afterRevision);
    }

    [Fact]
    public async Task A_session_whose_home_and_replica_silos_are_both_killed_is_started_afresh_with_session_present_0()
    {
        var gateway = Gateway();
        var home = _cluster.Silos[1];
        var holder = _cluster.Silos[2];
        var clientId = ClientHeldBy(home, holder);

        // The third silo survives with the client's routes (with routes sharded by topic, as a holder of its topic's
        // shard): they say a session was there, so its loss is known and counted. A session whose every route holder
        // dies with it leaves nothing behind that could count it (docs/architecture.md, "Silo loss").
        var topic = TopicHeldBy(_cluster.Silos[0], clientId);
        var session = Grains.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        using (new PlacementHintScope(home.SiloAddress))
        {
            await session.Connect(new ConnectRequest(presence, false, 3600, null, 5, 0));
        }

        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);
        await session.Disconnect(presence.ConnectionId, DisconnectKind.Normal);
        await Shard(topic).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("gone"), Qos = 1 });
        Assert.True(_storages[holder.Name].Contains(SessionCopyStore.StateName, session.GetGrainId()));
        Assert.NotNull(_cluster.GetSiloServiceProvider(_cluster.Silos[0].SiloAddress).GetRequiredService<RouteTable>().Get(clientId));

        // The third silo takes no copies: with a working disk, whichever of the two silos dies last would first have
        // copied the session there (see the re-replication tests below), and it would survive.
        _storages[_cluster.Silos[0].Name].RefuseWrites(SessionCopyStore.StateName);
        await KillAsync(home, holder);

        var result = await session.Connect(new ConnectRequest(gateway.NewConnection(), false, 3600, null, 5, 0));
        Assert.False(result.SessionPresent);
        Assert.Empty(result.Resend);
        Assert.Equal(1, _counters.GetValueOrDefault("mqtt.sessions.lost"));

        // Session Present 0 tells the client to subscribe again: the old subscriptions are gone from the routes too.
        Assert.Empty((await RoutesAsync(clientId))!.Subscriptions);
        Assert.Equal(0, await Shard(topic).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("after"), Qos = 1 }));
    }

    [Fact]
    public async Task A_replica_silo_that_returns_with_a_stale_copy_does_not_bring_back_acknowledged_messages()
    {
        var gateway = Gateway();
        var home = _cluster.Silos[1];
        var holder = _cluster.Silos[2];
        var clientId = ClientHeldBy(home, holder);
        var topic = clientId + "/t";
        var session = Grains.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        using (new PlacementHintScope(home.SiloAddress))
        {
            await session.Connect(new ConnectRequest(presence, false, 3600, null, 5, 0));
        }

        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);
        await session.Disconnect(presence.ConnectionId, DisconnectKind.Normal);
        await Shard(topic).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("old"), Qos = 1 });
        Assert.Single(_storages[holder.Name].Stored<SessionState>(SessionCopyStore.StateName, session.GetGrainId())!.Queue);

        // The replica silo dies with the message in its copy; the session goes on, copied to the third silo instead:
        // the client takes the message and leaves again.
        await KillAsync(holder);
        var back = gateway.NewConnection();
        var resumed = await session.Connect(new ConnectRequest(back, false, 3600, null, 5, 0));
        await session.Acknowledge(back.ConnectionId, Assert.Single(resumed.Resend).PacketId, OutboundAck.PubAck);
        await session.Disconnect(back.ConnectionId, DisconnectKind.Normal);
        Assert.True(_storages[_cluster.Silos[0].Name].Contains(SessionCopyStore.StateName, session.GetGrainId()));

        // The replica silo comes back on its storage with the old copy. The routes say the session acknowledged more
        // since (their state base is newer than the copy): the silo drops it before it serves anyone, and, being the
        // session's holder again, may already have been sent the current copy by the home's re-replication (the
        // message acknowledged). Then the home dies; the returning silo is the first replica silo again, so the
        // session is placed there, and takes the newest copy.
        Assert.True(_storages[holder.Name].Contains(SessionCopyStore.StateName, session.GetGrainId()));
        var returned = await _cluster.StartSiloAsync(holder.InstanceNumber, _cluster.Options);
        Assert.Equal(holder.Name, returned.Name);
        Assert.Empty(_storages[holder.Name].Stored<SessionState>(SessionCopyStore.StateName, session.GetGrainId())?.Queue ?? []);
        await KillAsync(home);

        var result = await session.Connect(new ConnectRequest(gateway.NewConnection(), false, 3600, null, 5, 0));
        Assert.True(result.SessionPresent);
        Assert.Empty(result.Resend);
        Assert.Equal(holder.Name, (await RoutesAsync(clientId))!.Home);
        Assert.Equal(topic, Assert.Single((await RoutesAsync(clientId))!.Subscriptions).Filter);
    }

    [Fact]
    public async Task An_idle_session_whose_replica_silo_is_killed_is_copied_to_the_third_silo_and_survives_the_loss_of_its_home()
    {
        var gateway = Gateway();
        var third = _cluster.Silos[0];
        var home = _cluster.Silos[1];
        var holder = _cluster.Silos[2];
        var clientId = ClientHeldBy(home, holder);
        var session = Grains.GetGrain<IClientSessionGrain>(clientId);
        await QueueWhileOfflineAsync(gateway, session, home, clientId + "/t");
        Assert.Equal(Queued, _storages[holder.Name].Stored<SessionState>(SessionCopyStore.StateName, session.GetGrainId())!.Queue.Count);
        Assert.False(_storages[third.Name].Contains(SessionCopyStore.StateName, session.GetGrainId()));

        // The replica silo dies while the session is idle: it saves nothing, so only the membership change can give it
        // its second copy back. The home writes it to the third silo, its holder now.
        await KillAsync(holder);
        await WaitUntilAsync(() => _counters.GetValueOrDefault("mqtt.sessions.rereplicated") >= 1, "the home re-replicated the session");
        Assert.Equal(Queued, _storages[third.Name].Stored<SessionState>(SessionCopyStore.StateName, session.GetGrainId())!.Queue.Count);

        // The third silo, an entry holder of the client now, has copied its entry (a failover starts from it).
        Assert.Equal(home.Name, (await EntryHeldByAsync(third, clientId))?.Home);

        // Then the home dies: the session comes back on the third silo with every queued message.
        await KillAsync(home);
        Assert.Equal(Enumerable.Range(0, Queued).Select(i => $"m{i}"), await ReceiveAllAsync(gateway, session));
        Assert.Equal(third.Name, (await RoutesAsync(clientId))!.Home);
        Assert.Equal(0, _counters.GetValueOrDefault("mqtt.sessions.lost"));
    }

    [Fact]
    public async Task The_surviving_holder_of_an_idle_session_whose_home_was_killed_copies_it_on_so_it_survives_losing_the_holder_too()
    {
        var gateway = Gateway();
        var third = _cluster.Silos[0];
        var home = _cluster.Silos[1];
        var holder = _cluster.Silos[2];
        var clientId = ClientHeldBy(home, holder);
        var session = Grains.GetGrain<IClientSessionGrain>(clientId);
        await QueueWhileOfflineAsync(gateway, session, home, clientId + "/t");

        // The home dies and nothing calls the session: it stays unplaced, its one copy on the holder. The holder
        // copies it to the third silo, the other silo the session now fails over to, which becomes an entry holder of
        // the client while the home is gone and copies its entry: with routes sharded by topic, a copy on a silo that
        // holds neither the entry nor one of the client's shards is of no use once the holder dies too.
        await KillAsync(home);
        await WaitUntilAsync(() => _counters.GetValueOrDefault("mqtt.sessions.rereplicated") >= 1, "the surviving holder copied the session on");
        Assert.Equal(Queued, _storages[third.Name].Stored<SessionState>(SessionCopyStore.StateName, session.GetGrainId())!.Queue.Count);
        Assert.Equal(home.Name, (await EntryHeldByAsync(third, clientId))?.Home);

        await KillAsync(holder);
        Assert.Equal(Enumerable.Range(0, Queued).Select(i => $"m{i}"), await ReceiveAllAsync(gateway, session));
        Assert.Equal(third.Name, (await RoutesAsync(clientId))!.Home);
        Assert.Equal(0, _counters.GetValueOrDefault("mqtt.sessions.lost"));
    }

    [Fact]
    public async Task A_silo_that_is_no_longer_a_holder_drops_its_copy_once_the_returned_holder_has_it()
    {
        var gateway = Gateway();
        var third = _cluster.Silos[0];
        var home = _cluster.Silos[1];
        var holder = _cluster.Silos[2];
        var clientId = ClientHeldBy(home, holder);
        var session = Grains.GetGrain<IClientSessionGrain>(clientId);

        // With routes sharded by topic, a topic whose shard the third silo does not hold: once the holder is back the
        // third silo holds nothing of the client, not even its entry, and must drop its copy all the same.
        await QueueWhileOfflineAsync(gateway, session, home, TopicNotHeldBy(third, clientId));
        await KillAsync(holder);
        await WaitUntilAsync(() => _counters.GetValueOrDefault("mqtt.sessions.rereplicated") >= 1, "the home re-replicated the session");
        Assert.True(_storages[third.Name].Contains(SessionCopyStore.StateName, session.GetGrainId()));

        // The holder returns on its storage and is the session's holder again (rendezvous order does not change): the
        // third silo's copy is one too many, and goes once the returned holder says it holds that version.
        var returned = await _cluster.StartSiloAsync(holder.InstanceNumber, _cluster.Options);
        await WaitUntilAsync(() => !_storages[third.Name].Contains(SessionCopyStore.StateName, session.GetGrainId()), "the third silo dropped its copy");
        Assert.Equal(Queued, _storages[holder.Name].Stored<SessionState>(SessionCopyStore.StateName, session.GetGrainId())!.Queue.Count);

        // The returned holder came back without its route replica and is an entry holder of the client again: it has
        // copied the entry back (a failover starts from it) before the home dies, since the third silo pruned its own.
        Assert.Equal(home.Name, (await EntryHeldByAsync(returned, clientId))?.Home);

        await KillAsync(home);
        Assert.Equal(Enumerable.Range(0, Queued).Select(i => $"m{i}"), await ReceiveAllAsync(gateway, session));
        Assert.Equal(holder.Name, (await RoutesAsync(clientId))!.Home);
    }

    private const int Queued = 5;

    /// <summary>Connects a persistent session homed on <paramref name="home"/>, subscribes, leaves, and has messages queued.</summary>
    private async Task QueueWhileOfflineAsync(RecordingGateway gateway, IClientSessionGrain session, InProcessSiloHandle home, string topic)
    {
        var presence = gateway.NewConnection();
        using (new PlacementHintScope(home.SiloAddress))
        {
            Assert.False((await session.Connect(new ConnectRequest(presence, false, 3600, null, 5, 0))).SessionPresent);
        }

        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);
        await session.Disconnect(presence.ConnectionId, DisconnectKind.Normal);
        for (var i = 0; i < Queued; i++)
        {
            Assert.Equal(1, await Shard(topic).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes($"m{i}"), Qos = 1 }));
        }
    }

    /// <summary>
    /// Reconnects until every queued message came back (the in-flight window lets two out per connection), asserting
    /// Session Present each time; returns the payloads in the order received.
    /// </summary>
    private static async Task<List<string>> ReceiveAllAsync(RecordingGateway gateway, IClientSessionGrain session)
    {
        var received = new List<string>();
        for (var round = 0; round <= Queued && received.Count < Queued; round++)
        {
            var back = gateway.NewConnection();
            var resumed = await session.Connect(new ConnectRequest(back, false, 3600, null, 5, 0));
            Assert.True(resumed.SessionPresent);
            Assert.NotEmpty(resumed.Resend);
            foreach (var delivery in resumed.Resend)
            {
                received.Add(Encoding.UTF8.GetString(delivery.Message.Payload.Span));
                await session.Acknowledge(back.ConnectionId, delivery.PacketId, OutboundAck.PubAck);
            }

            await session.Disconnect(back.ConnectionId, DisconnectKind.Normal);
        }

        return received;
    }

    /// <summary>Waits until <paramref name="condition"/> holds, looking again at every counted measurement; fails after 30 s.</summary>
    private async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            try
            {
                await _counted.WaitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"Timed out waiting until {what}.");
            }
        }
    }

    /// <summary>Kills the silos (no graceful stop, no hand-over) and waits until the others no longer count them active.</summary>
    private async Task KillAsync(params InProcessSiloHandle[] silos)
    {
        foreach (var silo in silos)
        {
            await _cluster.KillSiloAsync(silo);
        }

        var membership = _cluster.GetSiloServiceProvider(_cluster.Silos[0].SiloAddress).GetRequiredService<IClusterMembershipService>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(timeout.Token))
        {
            if (silos.All(s => snapshot.GetSiloStatus(s.SiloAddress) != SiloStatus.Active))
            {
                break;
            }
        }
    }

    /// <summary>A client id whose first replica silo, with <paramref name="home"/> as its home, is <paramref name="holder"/>.</summary>
    private string ClientHeldBy(InProcessSiloHandle home, InProcessSiloHandle holder)
    {
        var snapshot = _cluster.GetSiloServiceProvider(_cluster.Silos[0].SiloAddress).GetRequiredService<IClusterMembershipService>().CurrentSnapshot;
        while (true)
        {
            var clientId = NewId("held");
            if (SessionHolders.Rank(snapshot, clientId, home.Name, exclude: null)[0].Equals(holder.SiloAddress))
            {
                return clientId;
            }
        }
    }

    // A topic of the client's whose shard silo does not hold (any topic when routes are not sharded).
    private string TopicNotHeldBy(InProcessSiloHandle silo, string clientId) => TopicOf(clientId, silo, held: false);

    // A topic of the client's whose shard silo holds (any topic when routes are not sharded: every silo holds all).
    private string TopicHeldBy(InProcessSiloHandle silo, string clientId) => TopicOf(clientId, silo, held: true);

    private string TopicOf(string clientId, InProcessSiloHandle silo, bool held)
    {
        var services = _cluster.GetSiloServiceProvider(_cluster.Silos[0].SiloAddress);
        var holders = services.GetRequiredService<RouteHolders>();
        var snapshot = services.GetRequiredService<IClusterMembershipService>().CurrentSnapshot;
        return Enumerable.Range(0, 1000).Select(i => $"{clientId}/t{i}")
            .First(t => !holders.Sharded || holders.HoldersOf(snapshot, RouteHolders.ShardOf(t, Shards)).Contains(silo.SiloAddress) == held);
    }

    /// <summary>
    /// The client's entry on <paramref name="silo"/>, read as a failover there reads it: once the silo has taken in the
    /// first silo's current membership view and copied the entries it came to hold. Null when it holds none, or is
    /// not one of the client's entry holders (with routes sharded by topic; otherwise every silo holds every entry).
    /// </summary>
    private async Task<ClientRoutes?> EntryHeldByAsync(InProcessSiloHandle silo, string clientId)
    {
        // From the handle: a silo restarted with StartSiloAsync is not in the cluster's list of silos.
        var services = silo.SiloHost.Services;
        if (!services.GetRequiredService<RouteHolders>().Sharded)
        {
            return services.GetRequiredService<RouteTable>().Get(clientId);
        }

        var version = _cluster.GetSiloServiceProvider(_cluster.Silos[0].SiloAddress).GetRequiredService<IClusterMembershipService>().CurrentSnapshot.Version;
        var (trusted, routes) = await services.GetRequiredService<EntryLocator>().ReadLocalAsync(clientId, version).WaitAsync(TimeSpan.FromSeconds(30));
        return trusted ? routes : null;
    }

    // The client's newest routes, whole, as the first silo reads them: with routes sharded by topic it may hold none
    // of them, and each silo holds only its part.
    private Task<ClientRoutes?> RoutesAsync(string clientId) =>
        _cluster.GetSiloServiceProvider(_cluster.Silos[0].SiloAddress).GetRequiredService<ReplicaBroadcaster>().ReadWholeAsync(clientId);

    private ITopicShardGrain Shard(string topic) => Grains.GetGrain<ITopicShardGrain>(Orleans.Mqtt.Topics.MqttTopic.ShardOf(topic, Shards));

    private RecordingGateway Gateway()
    {
        var gateway = new RecordingGateway(Client);
        _gateways.Add(gateway);
        return gateway;
    }

    private static string NewId(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..10];
}
