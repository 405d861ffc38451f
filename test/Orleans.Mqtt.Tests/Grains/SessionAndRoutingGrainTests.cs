using Xunit;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>The session and topic shard grains on a two-silo cluster.</summary>
public sealed class SessionAndRoutingGrainTests(MqttClusterFixture fixture) : IClassFixture<MqttClusterFixture>
{
    private static MqttMessage Message(string topic, string payload, byte qos = 0, bool retain = false, string? sender = null) =>
        new() { Topic = topic, Payload = Encoding.UTF8.GetBytes(payload), Qos = qos, Retain = retain, SenderClientId = sender };

    private static string Text(Delivery d) => Encoding.UTF8.GetString(d.Message.Payload.Span);

    private static string NewId(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..10];

    private static ConnectRequest Request(GatewayPresence presence, bool clean, uint expiry, MqttMessage? will = null) =>
        new(presence, clean, expiry, will, 5, 0);

    /// <summary>A new client id's session, connected through a new recording gateway.</summary>
    private async Task<(string ClientId, IClientSessionGrain Session, GatewayPresence Presence, RecordingGateway Gateway)> ConnectNewAsync(
        string prefix, bool clean = true, uint expiry = 0)
    {
        var gateway = fixture.CreateGateway();
        var clientId = NewId(prefix);
        var session = fixture.Client.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        await session.Connect(Request(presence, clean, expiry));
        return (clientId, session, presence, gateway);
    }

    [Fact]
    public async Task Subscription_is_in_every_silos_route_table_when_subscribe_returns()
    {
        var (clientId, session, presence, _) = await ConnectNewAsync("routable");

        var result = await session.Subscribe(presence.ConnectionId, [new Subscription("routable/+/x", 1)]);

        Assert.Equal([(byte)1], result.GrantedQos);
        Assert.Equal(2, fixture.RouteTables().Count());
        foreach (var table in fixture.RouteTables())
        {
            var routes = table.Get(clientId);
            Assert.NotNull(routes);
            Assert.Equal("routable/+/x", Assert.Single(routes.Subscriptions).Filter);
            Assert.Equal(presence.ConnectionId, routes.Presence!.ConnectionId);
        }

        // A clean session's routes leave every replica when its connection ends.
        await session.Disconnect(presence.ConnectionId, DisconnectKind.Normal);
        Assert.All(fixture.RouteTables(), t => Assert.Null(t.Get(clientId)));
    }

    [Fact]
    public async Task A_change_reaches_the_session_silos_own_replica_without_a_call_to_its_replica_grain()
    {
        var (clientId, session, presence, _) = await ConnectNewAsync("local-replica", clean: true);
        await session.Subscribe(presence.ConnectionId, [new Subscription("local/replica", 1)]);

        foreach (var table in fixture.RouteTables())
        {
            Assert.Equal("local/replica", Assert.Single(table.Get(clientId)!.Subscriptions).Filter);
        }

        // Two changes (CONNECT, SUBSCRIBE) of a session kept in memory only, each sent to the one other silo's replica
        // grain; the session's own silo wrote its replica directly.
        Assert.Equal(2 * (fixture.RouteTables().Count() - 1), fixture.ReplicaGrainApplies.GetValueOrDefault(clientId));
    }

    [Fact]
    public async Task A_persistent_sessions_routes_ride_in_its_copy_call_to_the_other_silo_and_are_routable_there()
    {
        var (clientId, session, presence, gateway) = await ConnectNewAsync("ride", clean: false, expiry: 300);

        // A topic whose shard's first holder is the other silo, the session's copy holder, with the shard's activation
        // running there (a publish placed it, and matched nothing yet).
        var topic = TopicFirstHeldAwayFromHome(clientId);
        Assert.Equal(0, await fixture.ShardFor(topic).Publish(new MqttMessage { Topic = topic, Payload = new byte[] { 0 }, Qos = 1 }));
        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);

        // Two changes (CONNECT, SUBSCRIBE), each saved to the other silo as the session's copy (Mqtt:SessionReplicas 2)
        // with its routes in the same call: no call of their own to that silo's replica grain. The copy call answered
        // that the shard's activation runs there, so the subscription was not sent to the shard grain as well.
        Assert.Equal(2, fixture.RoutesWithCopies.GetValueOrDefault(clientId));
        Assert.Equal(0, fixture.ReplicaGrainApplies.GetValueOrDefault(clientId));
        Assert.Equal(0, fixture.ShardGrainAccepts.GetValueOrDefault(clientId));
        foreach (var table in fixture.RouteTables())
        {
            Assert.Equal(topic, Assert.Single(table.Get(clientId)!.Subscriptions).Filter);
            Assert.Equal(presence.ConnectionId, table.Get(clientId)!.Presence!.ConnectionId);
        }

        // SUBACK means routable: a publish to the topic reaches the session's connection.
        Assert.Equal(1, await fixture.ShardFor(topic).Publish(new MqttMessage { Topic = topic, Payload = new byte[] { 1 }, Qos = 1 }));
        Assert.Equal(presence.ConnectionId, (await gateway.NextDeliveryAsync()).ConnectionId);
    }

    // A topic of the client whose shard's first route holder, in the first silo's view, is not the session's home (any
    // topic with routes not sharded: no change goes to a shard grain then).
    private string TopicFirstHeldAwayFromHome(string clientId)
    {
        var services = fixture.Cluster.GetSiloServiceProvider(fixture.Cluster.Silos[0].SiloAddress);
        var holders = services.GetRequiredService<RouteHolders>();
        if (!holders.Sharded)
        {
            return clientId + "/t";
        }

        var view = services.GetRequiredService<IClusterMembershipService>().CurrentSnapshot;
        var home = RouteHolders.EntryHome(fixture.RouteTables().First().Get(clientId)!);
        Assert.NotNull(home);
        return Enumerable.Range(0, 1000).Select(i => $"{clientId}/t{i}")
            .First(t => view.Members[holders.HoldersOf(view, Orleans.Mqtt.Topics.MqttTopic.ShardOf(t, MqttClusterFixture.Shards))[0]].Name != home);
    }

    [Fact]
    public async Task Qos0_publishes_on_any_shard_reach_the_subscribers_gateway()
    {
        var (clientId, session, presence, gateway) = await ConnectNewAsync("qos0");
        await session.Subscribe(presence.ConnectionId, [new Subscription(clientId + "/#", 2)]);

        // Many topics spread over the shards, which are activated on both silos.
        for (var i = 0; i < 20; i++)
        {
            var routed = await fixture.ShardFor($"{clientId}/{i}").Publish(Message($"{clientId}/{i}", $"m{i}"));
            Assert.Equal(1, routed);
        }

        var received = new HashSet<string>();
        for (var i = 0; i < 20; i++)
        {
            var d = await gateway.NextDeliveryAsync();
            Assert.Equal(presence.ConnectionId, d.ConnectionId);
            Assert.Equal(0, d.Qos);
            received.Add(Text(d));
        }

        Assert.Equal(20, received.Count);
    }

    [Fact]
    public async Task Persistent_session_queues_qos1_while_offline_and_resends_in_flight_on_reconnect()
    {
        var gateway = fixture.CreateGateway();
        var clientId = NewId("offline");
        var topic = clientId + "/t";
        var session = fixture.Client.GetGrain<IClientSessionGrain>(clientId);
        var first = gateway.NewConnection();
        var connect = await session.Connect(Request(first, clean: true, expiry: 300));
        Assert.False(connect.SessionPresent);
        await session.Subscribe(first.ConnectionId, [new Subscription(topic, 1)]);
        await session.Disconnect(first.ConnectionId, DisconnectKind.Normal);

        for (var i = 0; i < 3; i++)
        {
            await fixture.ShardFor(topic).Publish(Message(topic, $"q{i}", qos: 2));
        }

        var second = gateway.NewConnection();
        var resumed = await session.Connect(Request(second, clean: false, expiry: 300));
        Assert.True(resumed.SessionPresent);

        // The in-flight window (2) is filled at once; QoS is the subscription's (1).
        Assert.Equal(["q0", "q1"], resumed.Resend.Select(Text));
        Assert.All(resumed.Resend, d => Assert.Equal(1, d.Qos));
        Assert.All(resumed.Resend, d => Assert.Equal(second.ConnectionId, d.ConnectionId));

        // Acknowledging one opens the window for the next.
        await session.Acknowledge(second.ConnectionId, resumed.Resend[0].PacketId, OutboundAck.PubAck);
        var next = await gateway.NextDeliveryAsync();
        Assert.Equal("q2", Text(next));

        // Reconnecting again re-sends what is still unacknowledged, marked DUP, in order.
        var third = gateway.NewConnection();
        var again = await session.Connect(Request(third, clean: false, expiry: 300));
        Assert.Equal(["q1", "q2"], again.Resend.Select(Text));
        Assert.All(again.Resend, d => Assert.True(d.Dup));
    }

    [Fact]
    public async Task Full_queue_drops_the_newest_messages_for_that_session_only()
    {
        var gateway = fixture.CreateGateway();
        var clientId = NewId("bounded");
        var topic = clientId + "/t";
        var session = fixture.Client.GetGrain<IClientSessionGrain>(clientId);
        var first = gateway.NewConnection();
        await session.Connect(Request(first, clean: true, expiry: 300));
        await session.Subscribe(first.ConnectionId, [new Subscription(topic, 1)]);
        await session.Disconnect(first.ConnectionId, DisconnectKind.Normal);

        for (var i = 0; i < MqttClusterFixture.MaxQueued + 3; i++)
        {
            await fixture.ShardFor(topic).Publish(Message(topic, $"m{i}", qos: 1));
        }

        var second = gateway.NewConnection();
        var resumed = await session.Connect(Request(second, clean: false, expiry: 300));
        var delivered = resumed.Resend.Select(Text).ToList();
        foreach (var d in resumed.Resend)
        {
            await session.Acknowledge(second.ConnectionId, d.PacketId, OutboundAck.PubAck);
        }

        while (delivered.Count < MqttClusterFixture.MaxQueued)
        {
            var d = await gateway.NextDeliveryAsync();
            delivered.Add(Text(d));
            await session.Acknowledge(second.ConnectionId, d.PacketId, OutboundAck.PubAck);
        }

        Assert.Equal(Enumerable.Range(0, MqttClusterFixture.MaxQueued).Select(i => $"m{i}"), delivered);
        Assert.False(gateway.TryTakeDelivery(out _));
    }

    [Fact]
    public async Task Takeover_disconnects_the_older_connection_with_0x8E_and_hands_back_its_will()
    {
        var gateway = fixture.CreateGateway();
        var clientId = NewId("takeover");
        var session = fixture.Client.GetGrain<IClientSessionGrain>(clientId);
        var older = gateway.NewConnection();
        await session.Connect(Request(older, clean: true, expiry: 0, will: Message("wills/" + clientId, "gone", qos: 1)));

        var newer = gateway.NewConnection();
        var result = await session.Connect(Request(newer, clean: true, expiry: 0));

        Assert.Equal((older.ConnectionId, (byte)0x8E), await gateway.NextDisconnectAsync());
        Assert.Equal("gone", Encoding.UTF8.GetString(result.WillOfReplacedConnection!.Payload.Span));

        // The older connection's late end changes nothing for the newer one.
        Assert.Null(await session.Disconnect(older.ConnectionId, DisconnectKind.ConnectionLost));
        Assert.All(fixture.RouteTables(), t => Assert.Equal(newer.ConnectionId, t.Get(clientId)!.Presence!.ConnectionId));
    }

    [Theory]
    [InlineData(DisconnectKind.Normal, false)]
    [InlineData(DisconnectKind.NormalWithWill, true)]
    [InlineData(DisconnectKind.ConnectionLost, true)]
    public async Task Will_is_handed_back_unless_the_disconnect_was_normal(DisconnectKind kind, bool expectWill)
    {
        var gateway = fixture.CreateGateway();
        var session = fixture.Client.GetGrain<IClientSessionGrain>(NewId("will"));
        var presence = gateway.NewConnection();
        await session.Connect(Request(presence, clean: true, expiry: 0, will: Message("wills/x", "w")));

        var will = await session.Disconnect(presence.ConnectionId, kind);

        Assert.Equal(expectWill, will is not null);
    }

    [Fact]
    public async Task Retained_message_is_replicated_to_every_silo_served_on_subscribe_and_deleted_by_an_empty_payload()
    {
        var topic = NewId("retained") + "/status";
        await fixture.ShardFor(topic).Publish(Message(topic, "on", qos: 1, retain: true));

        foreach (var table in fixture.RouteTables())
        {
            var found = new List<MqttMessage>();
            table.MatchRetained(topic, found);
            Assert.Equal("on", Encoding.UTF8.GetString(Assert.Single(found).Payload.Span));
        }

        var (_, session, presence, _) = await ConnectNewAsync("retained-sub");
        var wildcard = topic[..topic.IndexOf('/')] + "/+";
        var subscribed = await session.Subscribe(presence.ConnectionId, [new Subscription(wildcard, 0)]);
        var retained = Assert.Single(subscribed.Retained);
        Assert.True(retained.Retain);
        Assert.Equal(0, retained.Qos);

        await fixture.ShardFor(topic).Publish(Message(topic, string.Empty, retain: true));
        Assert.All(fixture.RouteTables(), t =>
        {
            var found = new List<MqttMessage>();
            t.MatchRetained(topic, found);
            Assert.Empty(found);
        });
    }

    [Fact]
    public async Task Inbound_qos2_packet_id_is_pending_until_released()
    {
        var (_, session, presence, _) = await ConnectNewAsync("qos2");

        Assert.False(await session.IsInboundQos2Pending(42));
        await session.AddInboundQos2(presence.ConnectionId, 42);
        Assert.True(await session.IsInboundQos2Pending(42));
        await session.ReleaseInboundQos2(presence.ConnectionId, 42);
        Assert.False(await session.IsInboundQos2Pending(42));
    }

    [Fact]
    public async Task No_local_subscription_does_not_receive_its_own_messages()
    {
        var gateway = fixture.CreateGateway();
        var clientId = NewId("nolocal");
        var topic = clientId + "/t";
        var session = fixture.Client.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        await session.Connect(Request(presence, clean: true, expiry: 0));
        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 0, NoLocal: true)]);

        Assert.Equal(0, await fixture.ShardFor(topic).Publish(Message(topic, "own", sender: clientId)));
        Assert.Equal(1, await fixture.ShardFor(topic).Publish(Message(topic, "other", sender: "someone-else")));
        Assert.Equal("other", Text(await gateway.NextDeliveryAsync()));
    }
}
