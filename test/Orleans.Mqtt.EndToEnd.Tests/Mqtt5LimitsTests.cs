using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;
using P = Orleans.Mqtt.EndToEnd.Tests.Infrastructure.Mqtt5Properties;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>A broker with small MQTT 5 limits: Mqtt:ReceiveMaximum 3, Mqtt:TopicAliasMaximum 2, Mqtt:MaxKeepAlive 1.</summary>
public sealed class Mqtt5LimitsBroker() : ConfiguredBroker(new()
{
    ["Mqtt__ReceiveMaximum"] = "3",
    ["Mqtt__TopicAliasMaximum"] = "2",
    ["Mqtt__MaxKeepAlive"] = "1",
});

/// <summary>The MQTT 5 limits a broker advertises in CONNACK are the ones it holds clients to.</summary>
public sealed class Mqtt5LimitsTests(Mqtt5LimitsBroker fixture) : IClassFixture<Mqtt5LimitsBroker>
{
    private readonly BrokerProcess _broker = fixture.Broker;

    [Fact]
    public async Task Receive_maximum_is_advertised_and_one_more_unacknowledged_publish_disconnects_with_0x93()
    {
        var clientId = "recv-max-" + Guid.NewGuid().ToString("N");
        var before = await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"receive_maximum_exceeded\"");
        var (client, connAck, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId);
        await using var _ = client;
        Assert.Equal(3u, P.Integer(connAck[P.ReceiveMaximum]));

        // Three QoS 2 publishes PUBRECed and not released fill the window; releasing one makes room for one more.
        for (ushort packetId = 1; packetId <= 3; packetId++)
        {
            await client.SendAsync(RawMqttClient.Publish("recv-max/t", [1], qos: 2, packetId: packetId, v5: true));
            Assert.Equal(0x50, (await client.ReadPacketAsync())!.Value.Header);
        }

        await client.SendAsync(RawMqttClient.PubRel(1));
        Assert.Equal(0x70, (await client.ReadPacketAsync())!.Value.Header);
        await client.SendAsync(RawMqttClient.Publish("recv-max/t", [1], qos: 2, packetId: 4, v5: true));
        Assert.Equal(0x50, (await client.ReadPacketAsync())!.Value.Header);

        // A QoS 2 re-send of a packet id still waiting for PUBREL is not a new publish.
        await client.SendAsync(RawMqttClient.Publish("recv-max/t", [1], qos: 2, packetId: 4, v5: true));
        Assert.Equal(0x50, (await client.ReadPacketAsync())!.Value.Header);

        await client.SendAsync(RawMqttClient.Publish("recv-max/t", [1], qos: 1, packetId: 5, v5: true));
        await Mqtt5Raw.AssertDisconnectedAsync(client, 0x93);
        await _broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains("bad input (receive_maximum_exceeded)", StringComparison.Ordinal));
        Assert.True(await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"receive_maximum_exceeded\"") > before);
    }

    [Fact]
    public async Task Topic_alias_maximum_is_advertised_and_enforced()
    {
        var id = Guid.NewGuid().ToString("N");
        var (client, connAck, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "alias-max-" + id);
        await using var _ = client;
        Assert.Equal(2u, P.Integer(connAck[P.TopicAliasMaximum]));

        Assert.Equal(0x10, await Mqtt5Raw.PublishAsync(client, "alias-max/" + id, "ok", 1, 1, P.Of(P.TwoByte(P.TopicAlias, 2))));
        await client.SendAsync(RawMqttClient.Publish("alias-max/" + id, [1], properties: P.Of(P.TwoByte(P.TopicAlias, 3))));
        await Mqtt5Raw.AssertDisconnectedAsync(client, 0x94);
    }

    [Theory]
    [InlineData(60)]
    [InlineData(0)]
    public async Task Keep_alive_over_the_maximum_gets_server_keep_alive_and_is_held_to_it(ushort requested)
    {
        var clientId = $"max-ka-{requested}-{Guid.NewGuid():N}";
        var (client, connAck, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId, keepAlive: requested);
        await using var _ = client;
        Assert.Equal(1u, P.Integer(connAck[P.ServerKeepAlive]));

        // Silent for one and a half times the server's keep alive: closed with 0x8D (keep alive timeout).
        await Mqtt5Raw.AssertDisconnectedAsync(client, 0x8D, TimeSpan.FromSeconds(10));
        await _broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains("keep_alive_timeout", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Keep_alive_within_the_maximum_is_kept()
    {
        var (client, connAck, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "ka-ok-" + Guid.NewGuid().ToString("N"), keepAlive: 1);
        await using var _ = client;
        Assert.False(connAck.ContainsKey(P.ServerKeepAlive));
    }
}
