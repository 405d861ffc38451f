using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;
using P = Orleans.Mqtt.EndToEnd.Tests.Infrastructure.Mqtt5Properties;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// MQTT 5 behaviour of the gateway with the default settings, on the wire: CONNACK capabilities, message expiry,
/// will properties, session expiry at DISCONNECT, topic aliases both ways, Maximum Packet Size of the client,
/// Payload Format Indicator and enhanced authentication.
/// </summary>
[Collection(SharedBrokerCollection.Name)]
public sealed class Mqtt5GatewayTests(SharedBroker shared)
{
    private readonly BrokerProcess _broker = shared.Broker;

    [Fact]
    public async Task Connack_tells_the_capabilities()
    {
        var (client, connAck, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "caps-" + Guid.NewGuid().ToString("N"));
        await using var _ = client;

        Assert.Equal(100u, P.Integer(connAck[P.ReceiveMaximum]));
        Assert.Equal(10u, P.Integer(connAck[P.TopicAliasMaximum]));
        Assert.Equal(1024u * 1024, P.Integer(connAck[P.MaximumPacketSize]));

        // Absent means QoS 2, retained messages, wildcards and subscription identifiers are all available.
        Assert.False(connAck.ContainsKey(P.MaximumQos));
        Assert.False(connAck.ContainsKey(P.RetainAvailable));
        Assert.False(connAck.ContainsKey(P.WildcardSubscriptionAvailable));
        Assert.False(connAck.ContainsKey(P.SubscriptionIdentifiersAvailable));
        Assert.False(connAck.ContainsKey(P.SharedSubscriptionAvailable));

        // No Mqtt:MaxKeepAlive by default: the client's keep alive stands.
        Assert.False(connAck.ContainsKey(P.ServerKeepAlive));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Message_expiry_counts_down_and_an_expired_message_is_not_sent(byte qos)
    {
        var id = Guid.NewGuid().ToString("N");
        var clientId = $"expiry-{qos}-{id}";
        var topic = $"expiry/{qos}/{id}";
        var persistent = P.Of(P.FourByte(P.SessionExpiryInterval, 300));

        var (sub, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId, persistent);
        await using (sub)
        {
            await Mqtt5Raw.SubscribeAsync(sub, topic, qos);
            await sub.SendAsync(RawMqttClient.Disconnect());
            Assert.Empty(await sub.ReadUntilClosedAsync());
        }

        await _broker.WaitForOutputAsync(l => l.Contains($"Client {clientId} from", StringComparison.Ordinal) && l.Contains("disconnected", StringComparison.Ordinal));
        var expiredBefore = await _broker.GetCounterAsync("mqtt_messages_dropped_total", "reason=\"expired\"");

        var (pub, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "expiry-pub-" + id);
        await using var _ = pub;
        await Mqtt5Raw.PublishAsync(pub, topic, "short-lived", qos, 1, P.Of(P.FourByte(P.MessageExpiryInterval, 1)));
        var published = DateTime.UtcNow;
        await Mqtt5Raw.PublishAsync(pub, topic, "long-lived", qos, 2, P.Of(P.FourByte(P.MessageExpiryInterval, 60)));

        // Time itself is what is waited for here: the first message's one-second interval has to run out.
        await Task.Delay(published.AddSeconds(1.5) - DateTime.UtcNow);

        var (back, _, present) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId, persistent, cleanStart: false);
        await using (back)
        {
            Assert.True(present);
            var delivered = ReceivedPublish.Parse(await back.ReadPacketAsync());
            Assert.Equal("long-lived", delivered.PayloadText);
            Assert.Equal(qos, delivered.Qos);
            var remaining = P.Integer(delivered.Properties[P.MessageExpiryInterval]);
            Assert.InRange(remaining, 1u, 59u);
            Assert.False(delivered.Properties.ContainsKey(P.TopicAlias));
            await Mqtt5Raw.AcknowledgeAsync(back, delivered);
            Assert.True(await _broker.GetCounterAsync("mqtt_messages_dropped_total", "reason=\"expired\"") > expiredBefore);
            await back.SendAsync(RawMqttClient.Disconnect());
            Assert.Empty(await back.ReadUntilClosedAsync());
        }

        // The expired message was acknowledged to the session: it is not sent again on the next connection.
        var (again, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId, persistent, cleanStart: false);
        await using (again)
        {
            await Mqtt5Raw.PublishAsync(pub, topic, "marker", qos, 3);
            var next = ReceivedPublish.Parse(await again.ReadPacketAsync());
            Assert.Equal("marker", next.PayloadText);
            Assert.False(next.Properties.ContainsKey(P.MessageExpiryInterval));
        }
    }

    [Fact]
    public async Task Will_keeps_its_message_expiry_interval_and_the_will_delay_reaches_the_session()
    {
        var id = Guid.NewGuid().ToString("N");
        var willTopic = $"will-expiry/{id}";
        var (watcher, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "will-watch-" + id);
        await using var _ = watcher;
        await Mqtt5Raw.SubscribeAsync(watcher, willTopic, 1);

        var clientId = "will-expiry-" + id;
        var (client, _, _) = await Mqtt5Raw.ConnectAsync(
            _broker.MqttPort, clientId, willTopic: willTopic, willPayload: "gone", willProperties: P.Of(P.FourByte(P.MessageExpiryInterval, 120)));
        await _broker.WaitForOutputAsync(l => l.Contains($"Client {clientId} connected", StringComparison.Ordinal) && l.Contains("will delay interval 0", StringComparison.Ordinal));

        // Gone without DISCONNECT: the will is published.
        await client.DisposeAsync();
        var will = ReceivedPublish.Parse(await watcher.ReadPacketAsync());
        Assert.Equal("gone", will.PayloadText);
        Assert.InRange(P.Integer(will.Properties[P.MessageExpiryInterval]), 1u, 120u);
        await Mqtt5Raw.AcknowledgeAsync(watcher, will);

        // The Will Delay Interval of the CONNECT is handed to the session (which owns the delay).
        var delayedId = "will-delay-" + id;
        var (delayed, _, _) = await Mqtt5Raw.ConnectAsync(
            _broker.MqttPort, delayedId, willTopic: willTopic, willPayload: "later", willProperties: P.Of(P.FourByte(P.WillDelayInterval, 7)));
        await using var __ = delayed;
        await _broker.WaitForOutputAsync(l => l.Contains($"Client {delayedId} connected", StringComparison.Ordinal) && l.Contains("will delay interval 7", StringComparison.Ordinal));
        await delayed.SendAsync(RawMqttClient.Disconnect());
        Assert.Empty(await delayed.ReadUntilClosedAsync());
    }

    [Fact]
    public async Task Disconnect_with_a_session_expiry_after_connect_set_0_is_a_protocol_error_and_publishes_the_will()
    {
        var id = Guid.NewGuid().ToString("N");
        var willTopic = $"sei-will/{id}";
        var (watcher, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "sei-watch-" + id);
        await using var _ = watcher;
        await Mqtt5Raw.SubscribeAsync(watcher, willTopic, 0);
        var before = await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"protocol_error\"");

        var (client, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "sei-" + id, willTopic: willTopic, willPayload: "abnormal");
        await using var __ = client;
        await client.SendAsync(RawMqttClient.Disconnect(0x00, P.Of(P.FourByte(P.SessionExpiryInterval, 60))));

        await Mqtt5Raw.AssertDisconnectedAsync(client, 0x82);
        Assert.Equal("abnormal", ReceivedPublish.Parse(await watcher.ReadPacketAsync()).PayloadText);
        await _broker.WaitForOutputAsync(l => l.Contains("sei-" + id, StringComparison.Ordinal) && l.Contains("bad input (protocol_error)", StringComparison.Ordinal));
        Assert.True(await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"protocol_error\"") > before);
    }

    [Theory]
    [InlineData(0u, "0")]
    [InlineData(30u, "30")]
    [InlineData(null, "unchanged")]
    public async Task Disconnect_session_expiry_is_handed_to_the_session(uint? onDisconnect, string logged)
    {
        var clientId = "sei-forward-" + Guid.NewGuid().ToString("N");
        var (client, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId, P.Of(P.FourByte(P.SessionExpiryInterval, 300)));
        await using var _ = client;
        await client.SendAsync(onDisconnect is { } value ? RawMqttClient.Disconnect(0x00, P.Of(P.FourByte(P.SessionExpiryInterval, value))) : RawMqttClient.Disconnect());

        // A normal end: no DISCONNECT from the server.
        Assert.Empty(await client.ReadUntilClosedAsync());
        await _broker.WaitForOutputAsync(l => l.Contains($"Client {clientId} from", StringComparison.Ordinal) && l.Contains($"disconnected (Normal, session expiry interval {logged})", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Inbound_topic_alias_is_set_with_a_topic_and_used_with_an_empty_one()
    {
        var id = Guid.NewGuid().ToString("N");
        var topic = $"alias-in/{id}";
        var (sub, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "alias-in-sub-" + id);
        await using var _ = sub;
        await Mqtt5Raw.SubscribeAsync(sub, topic, 1);

        var (pub, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "alias-in-pub-" + id);
        await using var __ = pub;
        Assert.Equal(0, await Mqtt5Raw.PublishAsync(pub, topic, "with topic", 1, 1, P.Of(P.TwoByte(P.TopicAlias, 10))));
        Assert.Equal(0, await Mqtt5Raw.PublishAsync(pub, string.Empty, "alias only", 1, 2, P.Of(P.TwoByte(P.TopicAlias, 10))));

        foreach (var expected in new[] { "with topic", "alias only" })
        {
            var received = ReceivedPublish.Parse(await sub.ReadPacketAsync());
            Assert.Equal(topic, received.Topic);
            Assert.Equal(expected, received.PayloadText);
            await Mqtt5Raw.AcknowledgeAsync(sub, received);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(11)]
    public async Task Inbound_topic_alias_0_or_over_the_maximum_disconnects_with_0x94(ushort alias)
    {
        var clientId = $"alias-bad-{alias}-{Guid.NewGuid():N}";
        var (client, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId);
        await using var _ = client;
        await client.SendAsync(RawMqttClient.Publish("alias/bad", [1], properties: P.Of(P.TwoByte(P.TopicAlias, alias))));

        await Mqtt5Raw.AssertDisconnectedAsync(client, 0x94);
        await _broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains("bad input (topic_alias_invalid)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Inbound_topic_alias_used_before_it_is_set_disconnects_with_0x82()
    {
        var clientId = "alias-unset-" + Guid.NewGuid().ToString("N");
        var (client, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId);
        await using var _ = client;
        await client.SendAsync(RawMqttClient.Publish(string.Empty, [1], qos: 1, packetId: 1, properties: P.Of(P.TwoByte(P.TopicAlias, 3))));

        await Mqtt5Raw.AssertDisconnectedAsync(client, 0x82);
        await _broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains("topic alias 3 used before it was set", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Outbound_topic_aliases_go_up_to_the_client_maximum_and_reuse_the_oldest_slot()
    {
        var id = Guid.NewGuid().ToString("N");
        var prefix = $"alias-out/{id}";
        var (sub, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "alias-out-sub-" + id, P.Of(P.TwoByte(P.TopicAliasMaximum, 2)));
        await using var _ = sub;
        await Mqtt5Raw.SubscribeAsync(sub, prefix + "/#", 0);
        var (pub, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "alias-out-pub-" + id);
        await using var __ = pub;

        // (topic published, topic on the wire, alias on the wire): slot 1 is the oldest when a third topic arrives.
        (string Published, string OnWire, uint Alias)[] steps =
        [
            ("a", "a", 1),
            ("a", string.Empty, 1),
            ("b", "b", 2),
            ("c", "c", 1),
            ("a", "a", 2),
            ("c", string.Empty, 1),
        ];
        for (var i = 0; i < steps.Length; i++)
        {
            var (published, onWire, alias) = steps[i];
            await Mqtt5Raw.PublishAsync(pub, $"{prefix}/{published}", $"m{i}", 0);
            var received = ReceivedPublish.Parse(await sub.ReadPacketAsync());
            Assert.Equal($"m{i}", received.PayloadText);
            Assert.Equal(onWire.Length == 0 ? string.Empty : $"{prefix}/{onWire}", received.Topic);
            Assert.Equal(alias, P.Integer(received.Properties[P.TopicAlias]));
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public async Task Publish_over_the_client_maximum_packet_size_is_not_sent(byte qos)
    {
        var id = Guid.NewGuid().ToString("N");
        var clientId = $"mps-{qos}-{id}";
        var topic = $"mps/{qos}/{id}";
        var before = await _broker.GetCounterAsync("mqtt_messages_dropped_total", "reason=\"packet_too_large_for_client\"");
        var (sub, _, _) = await Mqtt5Raw.ConnectAsync(
            _broker.MqttPort, clientId, P.Of(P.FourByte(P.SessionExpiryInterval, 300), P.FourByte(P.MaximumPacketSize, 200)));
        await using (sub)
        {
            await Mqtt5Raw.SubscribeAsync(sub, topic, qos);
            var (pub, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "mps-pub-" + id);
            await using var _ = pub;
            await Mqtt5Raw.PublishAsync(pub, topic, new string('x', 400), qos, 1);
            await Mqtt5Raw.PublishAsync(pub, topic, "small", qos, 2);

            // Same topic, so the order is kept: the first packet that arrives is the small one.
            var received = ReceivedPublish.Parse(await sub.ReadPacketAsync());
            Assert.Equal("small", received.PayloadText);
            await Mqtt5Raw.AcknowledgeAsync(sub, received);
            Assert.True(await _broker.GetCounterAsync("mqtt_messages_dropped_total", "reason=\"packet_too_large_for_client\"") > before);
            await sub.SendAsync(RawMqttClient.Disconnect());
            Assert.Empty(await sub.ReadUntilClosedAsync());
        }

        if (qos == 0)
        {
            return;
        }

        // Acknowledged to the session: a connection without the limit does not get it again.
        var (again, _, present) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId, P.Of(P.FourByte(P.SessionExpiryInterval, 300)), cleanStart: false);
        await using (again)
        {
            Assert.True(present);
            var (pub, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "mps-pub2-" + id);
            await using var _ = pub;
            await Mqtt5Raw.PublishAsync(pub, topic, "marker", qos, 3);
            Assert.Equal("marker", ReceivedPublish.Parse(await again.ReadPacketAsync()).PayloadText);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Payload_that_is_not_utf8_under_payload_format_indicator_1_is_refused_with_0x99(byte qos)
    {
        var id = Guid.NewGuid().ToString("N");
        var topic = $"pfi/{qos}/{id}";
        var utf8 = P.Of(P.Byte(P.PayloadFormatIndicator, 1));
        var before = await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"payload_format_invalid\"");
        var (sub, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "pfi-sub-" + id);
        await using var _ = sub;
        await Mqtt5Raw.SubscribeAsync(sub, topic, 0);

        var clientId = $"pfi-pub-{qos}-{id}";
        var (pub, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId);
        await using var __ = pub;
        await pub.SendAsync(RawMqttClient.Publish(topic, [0xC3, 0x28, 0xFF], qos, 1, properties: utf8));
        if (qos == 0)
        {
            await Mqtt5Raw.AssertDisconnectedAsync(pub, 0x99);
        }
        else
        {
            var (header, body) = (await pub.ReadPacketAsync())!.Value;
            Assert.Equal(qos == 1 ? 0x40 : 0x50, header);
            Assert.Equal(0x99, body[2]);
        }

        // Not routed: a valid UTF-8 message after it is the first the subscriber gets.
        var (marker, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "pfi-marker-" + id);
        await using var ___ = marker;
        await Mqtt5Raw.PublishAsync(marker, topic, "grüße", 1, 1, utf8);
        Assert.Equal("grüße", ReceivedPublish.Parse(await sub.ReadPacketAsync()).PayloadText);

        await _broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains("bad input (payload_format_invalid)", StringComparison.Ordinal));
        Assert.True(await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"payload_format_invalid\"") > before);
    }

    [Fact]
    public async Task Auth_packet_without_an_authentication_method_disconnects_with_0x82()
    {
        var clientId = "auth-packet-" + Guid.NewGuid().ToString("N");
        var (client, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId);
        await using var _ = client;

        // AUTH, reason 0x18 (continue authentication), no properties.
        await client.SendAsync(RawMqttClient.Packet(0xF0, [0x18, 0x00]));

        await Mqtt5Raw.AssertDisconnectedAsync(client, 0x82);
        await _broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains("bad input (protocol_error)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Connect_with_an_authentication_method_gets_connack_0x8C()
    {
        await using var client = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await client.SendAsync(RawMqttClient.Connect(5, "auth-method-" + Guid.NewGuid().ToString("N"), properties: P.Of(P.Utf8String(P.AuthenticationMethod, "SCRAM-SHA-256"))));

        var (header, body) = (await client.ReadPacketAsync())!.Value;
        Assert.Equal(0x20, header);
        Assert.Equal(0x8C, body[1]);
        Assert.Empty(await client.ReadUntilClosedAsync());
        await _broker.WaitForOutputAsync(l => l.Contains("refused (bad_authentication_method)", StringComparison.Ordinal) && l.Contains("SCRAM-SHA-256", StringComparison.Ordinal));
    }
}
