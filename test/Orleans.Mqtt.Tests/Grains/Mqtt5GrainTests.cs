using System.Text;
using Orleans.Mqtt.Grains;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>Shared subscriptions and expiry in the grains, on a two-silo cluster.</summary>
public sealed class Mqtt5GrainTests(MqttClusterFixture fixture) : IClassFixture<MqttClusterFixture>
{
    private static string NewId(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..10];

    private static MqttMessage Message(string topic, string payload, byte qos, DateTime? expiresAt = null) =>
        new() { Topic = topic, Payload = Encoding.UTF8.GetBytes(payload), Qos = qos, ExpiresAtUtc = expiresAt };

    private static string Text(Delivery d) => Encoding.UTF8.GetString(d.Message.Payload.Span);

    private async Task<(IClientSessionGrain Session, GatewayPresence Presence)> ConnectAsync(RecordingGateway gateway, string clientId, uint expiry = 0)
    {
        var session = fixture.Client.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        await session.Connect(new ConnectRequest(presence, true, expiry, null, 5, 0));
        return (session, presence);
    }

    [Fact]
    public async Task Shared_subscription_gives_each_message_to_one_member_in_turn()
    {
        var topic = NewId("shared") + "/t";
        var share = "$share/g/" + topic;
        var gateways = new[] { fixture.CreateGateway(), fixture.CreateGateway(), fixture.CreateGateway() };
        for (var i = 0; i < gateways.Length; i++)
        {
            var (session, presence) = await ConnectAsync(gateways[i], NewId("member"));
            await session.Subscribe(presence.ConnectionId, [new Subscription(share, 0)]);
        }

        for (var i = 0; i < 9; i++)
        {
            Assert.Equal(1, await fixture.ShardFor(topic).Publish(Message(topic, $"m{i}", 0)));
        }

        var received = new List<string>();
        foreach (var gateway in gateways)
        {
            for (var i = 0; i < 3; i++)
            {
                received.Add(Text(await gateway.NextDeliveryAsync()));
            }

            Assert.False(gateway.TryTakeDelivery(out _));
        }

        Assert.Equal(Enumerable.Range(0, 9).Select(i => $"m{i}"), received.Order());
    }

    [Fact]
    public async Task Messages_of_a_member_that_leaves_go_to_another_member()
    {
        var topic = NewId("redispatch") + "/t";
        var share = "$share/workers/" + topic;
        var leaving = fixture.CreateGateway();
        var staying = fixture.CreateGateway();
        var (a, aPresence) = await ConnectAsync(leaving, NewId("a"));
        await a.Subscribe(aPresence.ConnectionId, [new Subscription(share, 1)]);
        var (b, bPresence) = await ConnectAsync(staying, NewId("b"));
        await b.Subscribe(bPresence.ConnectionId, [new Subscription(share, 1)]);

        // Two QoS 1 messages: one to each member; member a never acknowledges and goes away.
        await fixture.ShardFor(topic).Publish(Message(topic, "first", 1));
        await fixture.ShardFor(topic).Publish(Message(topic, "second", 1));
        var toA = await leaving.NextDeliveryAsync();
        var toB = await staying.NextDeliveryAsync();
        await b.Acknowledge(bPresence.ConnectionId, toB.PacketId, OutboundAck.PubAck);
        await a.Disconnect(aPresence.ConnectionId, DisconnectKind.ConnectionLost);

        var moved = await staying.NextDeliveryAsync();
        Assert.Equal(Text(toA), Text(moved));
        Assert.Equal(1, moved.Qos);
        Assert.NotEqual(Text(toA), Text(toB));
    }

    [Fact]
    public async Task A_qos2_message_already_sent_to_a_member_that_leaves_goes_to_no_other_member()
    {
        var topic = NewId("redispatch-qos2") + "/t";
        var share = "$share/workers/" + topic;
        var leaving = fixture.CreateGateway();
        var staying = fixture.CreateGateway();
        var (a, aPresence) = await ConnectAsync(leaving, NewId("a"));
        await a.Subscribe(aPresence.ConnectionId, [new Subscription(share, 2)]);
        var (b, bPresence) = await ConnectAsync(staying, NewId("b"));
        await b.Subscribe(bPresence.ConnectionId, [new Subscription(share, 2)]);

        await fixture.ShardFor(topic).Publish(Message(topic, "first", 2));
        await fixture.ShardFor(topic).Publish(Message(topic, "second", 2));
        var toA = await leaving.NextDeliveryAsync();
        var toB = await staying.NextDeliveryAsync();
        Assert.Equal(2, toA.Qos);
        await a.Disconnect(aPresence.ConnectionId, DisconnectKind.ConnectionLost);

        // A later message to the group reaches b: anything moved from a would have been pushed to b before it.
        await b.Acknowledge(bPresence.ConnectionId, toB.PacketId, OutboundAck.PubRec);
        await b.Acknowledge(bPresence.ConnectionId, toB.PacketId, OutboundAck.PubComp);
        await fixture.ShardFor(topic).Publish(Message(topic, "third", 2));
        Assert.Equal("third", Text(await staying.NextDeliveryAsync()));
        Assert.False(staying.TryTakeDelivery(out _));
    }

    [Fact]
    public async Task A_shared_message_goes_to_the_chosen_member_at_that_members_granted_qos()
    {
        var topic = NewId("shared-qos") + "/t";
        var share = "$share/g/" + topic;
        var low = fixture.CreateGateway();
        var high = fixture.CreateGateway();
        var (a, aPresence) = await ConnectAsync(low, NewId("low"));
        await a.Subscribe(aPresence.ConnectionId, [new Subscription(share, 0)]);
        var (b, bPresence) = await ConnectAsync(high, NewId("high"));
        await b.Subscribe(bPresence.ConnectionId, [new Subscription(share, 1)]);

        await fixture.ShardFor(topic).Publish(Message(topic, "one", 1));
        await fixture.ShardFor(topic).Publish(Message(topic, "two", 1));

        Assert.Equal(0, (await low.NextDeliveryAsync()).Qos);
        Assert.Equal(1, (await high.NextDeliveryAsync()).Qos);
    }

    [Fact]
    public async Task Shared_subscribe_gets_no_retained_messages()
    {
        var topic = NewId("shared-retained") + "/t";
        await fixture.ShardFor(topic).Publish(Message(topic, "kept", 1) with { Retain = true });
        var (session, presence) = await ConnectAsync(fixture.CreateGateway(), NewId("member"));

        var shared = await session.Subscribe(presence.ConnectionId, [new Subscription("$share/g/" + topic, 1)]);
        var plain = await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);

        Assert.Empty(shared.Retained);
        Assert.Single(plain.Retained);
    }

    [Fact]
    public async Task Expired_queued_messages_are_not_sent_and_the_rest_carry_their_expiry()
    {
        var clientId = NewId("expiry");
        var topic = clientId + "/t";
        var gateway = fixture.CreateGateway();
        var (session, presence) = await ConnectAsync(gateway, clientId, expiry: 300);
        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);
        await session.Disconnect(presence.ConnectionId, DisconnectKind.Normal);

        await fixture.ShardFor(topic).Publish(Message(topic, "expired", 1, DateTime.UtcNow.AddSeconds(-1)));
        await fixture.ShardFor(topic).Publish(Message(topic, "fresh", 1, DateTime.UtcNow.AddMinutes(5)));

        var again = gateway.NewConnection();
        var resumed = await session.Connect(new ConnectRequest(again, false, 300, null, 5, 0));
        var only = Assert.Single(resumed.Resend);
        Assert.Equal("fresh", Text(only));
        Assert.InRange(only.Message.RemainingExpiryInterval(DateTime.UtcNow), 290u, 300u);
    }

    [Fact]
    public async Task Session_expires_by_the_sweep_without_the_client_coming_back()
    {
        var clientId = NewId("sweep");
        var topic = clientId + "/t";
        var (session, presence) = await ConnectAsync(fixture.CreateGateway(), clientId, expiry: 1);
        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);
        await session.Disconnect(presence.ConnectionId, DisconnectKind.Normal);
        Assert.All(fixture.RouteTables(), t => Assert.NotNull(t.Get(clientId)));

        // The sweeper of one silo ends the session about a second after the disconnect; its routes leave every replica.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (fixture.RouteTables().Any(t => t.Get(clientId) is not null))
        {
            Assert.True(DateTime.UtcNow < deadline, "session was not swept");
            await Task.Delay(50);
        }

        Assert.Equal(0, await fixture.ShardFor(topic).Publish(Message(topic, "nobody", 1)));
    }
}
