using System.Text;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>MQTT behaviour on the wire with the MQTTnet client and raw packets: transports, sessions, takeover, exactly once.</summary>
[Collection(SharedBrokerCollection.Name)]
public sealed class ProtocolTests(SharedBroker shared)
{
    private readonly BrokerProcess _broker = shared.Broker;

    [Fact]
    public Task WebSocket_transport_carries_publish_and_subscribe() =>
        RoundTripAsync(b => b.WithWebSocketServer(o => o.WithUri($"ws://127.0.0.1:{_broker.WebSocketPort}/mqtt")));

    [Fact]
    public Task Tls_transport_carries_publish_and_subscribe() =>
        RoundTripAsync(b => b
            .WithTcpServer("127.0.0.1", _broker.TlsPort)
            .WithTlsOptions(o => o.UseTls().WithCertificateValidationHandler(_ => true)));

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task Persistent_session_is_present_on_reconnect_and_clean_start_discards_it(MqttProtocolVersion version)
    {
        var clientId = "present-" + Guid.NewGuid().ToString("N");
        MqttClientOptions Options(bool clean) => new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", _broker.MqttPort)
            .WithProtocolVersion(version)
            .WithClientId(clientId)
            .WithCleanSession(clean)
            .WithSessionExpiryInterval(version == MqttProtocolVersion.V500 ? 300u : 0u)
            .Build();

        using var client = new MqttClientFactory().CreateMqttClient();
        var first = await client.ConnectAsync(Options(clean: false));
        Assert.False(first.IsSessionPresent);
        await client.SubscribeAsync("present/t", MqttQualityOfServiceLevel.AtLeastOnce);
        await client.DisconnectAsync();

        var second = await client.ConnectAsync(Options(clean: false));
        Assert.True(second.IsSessionPresent);
        await client.DisconnectAsync();

        var third = await client.ConnectAsync(Options(clean: true));
        Assert.False(third.IsSessionPresent);
        await client.DisconnectAsync();
    }

    [Fact]
    public async Task Takeover_disconnects_the_older_connection_with_0x8E()
    {
        var clientId = "takeover-" + Guid.NewGuid().ToString("N");
        var options = new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", _broker.MqttPort)
            .WithProtocolVersion(MqttProtocolVersion.V500)
            .WithClientId(clientId)
            .Build();
        using var older = new MqttClientFactory().CreateMqttClient();
        var disconnected = new TaskCompletionSource<(MQTTnet.MqttClientDisconnectReason Reason, string? Text)>(TaskCreationOptions.RunContinuationsAsynchronously);
        older.DisconnectedAsync += e =>
        {
            disconnected.TrySetResult((e.Reason, e.ReasonString));
            return Task.CompletedTask;
        };
        await older.ConnectAsync(options);

        using var newer = new MqttClientFactory().CreateMqttClient();
        await newer.ConnectAsync(options);

        var (reason, text) = await disconnected.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(MQTTnet.MqttClientDisconnectReason.SessionTakenOver, reason);
        Assert.Equal("session_taken_over", text);
        Assert.True(newer.IsConnected);
        await _broker.WaitForOutputAsync(l => l.Contains($"Client {clientId} taken over", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Empty_client_id_gets_an_assigned_identifier_in_v5_and_is_accepted_in_v311_with_clean_session()
    {
        using var v5 = new MqttClientFactory().CreateMqttClient();
        var result = await v5.ConnectAsync(new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", _broker.MqttPort)
            .WithProtocolVersion(MqttProtocolVersion.V500)
            .WithClientId(string.Empty)
            .Build());
        Assert.Equal(MqttClientConnectResultCode.Success, result.ResultCode);
        Assert.False(string.IsNullOrEmpty(result.AssignedClientIdentifier));

        await using var v311 = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, string.Empty);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Inbound_qos2_duplicate_is_routed_once(byte level)
    {
        var v5 = level == 5;
        var topic = $"exactly-once/{level}/{Guid.NewGuid():N}";
        await using var sub = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "eo-sub-" + Guid.NewGuid().ToString("N"));
        await sub.SendAsync(RawMqttClient.Subscribe(1, false, (topic, 0)));
        Assert.Equal(0x90, (await sub.ReadPacketAsync())!.Value.Header);

        await using var pub = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, "eo-pub-" + Guid.NewGuid().ToString("N"));
        var publish = RawMqttClient.Publish(topic, Encoding.UTF8.GetBytes("once"), qos: 2, packetId: 7, v5: v5);
        await pub.SendAsync(publish);
        Assert.Equal(0x50, (await pub.ReadPacketAsync())!.Value.Header);

        // The client did not see PUBREC in time and sends again with DUP: no second copy.
        publish[0] |= 0x08;
        await pub.SendAsync(publish);
        Assert.Equal(0x50, (await pub.ReadPacketAsync())!.Value.Header);
        await pub.SendAsync(RawMqttClient.PubRel(7));
        Assert.Equal(0x70, (await pub.ReadPacketAsync())!.Value.Header);

        // A later message on the same topic (same shard, per-topic order) marks the end of what was routed.
        await pub.SendAsync(RawMqttClient.Publish(topic, Encoding.UTF8.GetBytes("marker"), v5: v5));
        var payloads = new List<string>();
        while (!payloads.Contains("marker"))
        {
            var (header, body) = (await sub.ReadPacketAsync())!.Value;
            Assert.Equal(0x30, header & 0xF0);
            payloads.Add(Encoding.UTF8.GetString(body, 2 + topic.Length, body.Length - 2 - topic.Length));
        }

        Assert.Equal(["once", "marker"], payloads);
    }

    [Fact]
    public async Task Unacknowledged_qos1_message_is_resent_with_dup_on_reconnect()
    {
        var clientId = "resend-" + Guid.NewGuid().ToString("N");
        var topic = "resend/" + clientId;
        await using (var first = await RawMqttClient.ConnectAsync(_broker.MqttPort))
        {
            await first.SendAsync(RawMqttClient.Connect(4, clientId, cleanSession: false));
            Assert.Equal(0x20, (await first.ReadPacketAsync())!.Value.Header);
            await first.SendAsync(RawMqttClient.Subscribe(1, false, (topic, 1)));
            Assert.Equal(0x90, (await first.ReadPacketAsync())!.Value.Header);

            await using var pub = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "resend-pub-" + Guid.NewGuid().ToString("N"));
            await pub.SendAsync(RawMqttClient.Publish(topic, Encoding.UTF8.GetBytes("unacked"), qos: 1, packetId: 3));
            Assert.Equal(0x40, (await pub.ReadPacketAsync())!.Value.Header);

            var (header, _) = (await first.ReadPacketAsync())!.Value;
            Assert.Equal(0x32, header & 0xFE);

            // Gone without PUBACK.
        }

        await using var second = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await second.SendAsync(RawMqttClient.Connect(4, clientId, cleanSession: false));
        var (connAckHeader, connAck) = (await second.ReadPacketAsync())!.Value;
        Assert.Equal(0x20, connAckHeader);
        Assert.Equal(1, connAck[0]);
        var (resentHeader, resent) = (await second.ReadPacketAsync())!.Value;
        Assert.Equal(0x3A, resentHeader & 0xFE);
        Assert.EndsWith("unacked", Encoding.UTF8.GetString(resent), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Overlapping_subscriptions_deliver_one_copy_at_the_highest_granted_qos()
    {
        var topic = $"overlap/{Guid.NewGuid():N}/x";
        var prefix = topic[..topic.LastIndexOf('/')];
        await using var sub = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "overlap-" + Guid.NewGuid().ToString("N"));
        await sub.SendAsync(RawMqttClient.Subscribe(1, false, (prefix + "/+", 0), (prefix + "/#", 1)));
        Assert.Equal(0x90, (await sub.ReadPacketAsync())!.Value.Header);

        await using var pub = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "overlap-pub-" + Guid.NewGuid().ToString("N"));
        await pub.SendAsync(RawMqttClient.Publish(topic, Encoding.UTF8.GetBytes("one"), qos: 1, packetId: 1));
        await pub.SendAsync(RawMqttClient.Publish(topic, Encoding.UTF8.GetBytes("marker"), qos: 1, packetId: 2));

        var (h1, b1) = (await sub.ReadPacketAsync())!.Value;
        Assert.Equal(0x32, h1 & 0xF6);
        Assert.EndsWith("one", Encoding.UTF8.GetString(b1), StringComparison.Ordinal);
        var (h2, b2) = (await sub.ReadPacketAsync())!.Value;
        Assert.Equal(0x32, h2 & 0xF6);
        Assert.EndsWith("marker", Encoding.UTF8.GetString(b2), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Keep_alive_expiry_closes_the_connection_and_publishes_the_will()
    {
        var willTopic = $"keepalive/{Guid.NewGuid():N}";
        await using var watcher = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "ka-watch-" + Guid.NewGuid().ToString("N"));
        await watcher.SendAsync(RawMqttClient.Subscribe(1, false, (willTopic, 0)));
        Assert.Equal(0x90, (await watcher.ReadPacketAsync())!.Value.Header);

        // A client that promised a packet every second and then says nothing.
        await using var silent = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await silent.SendAsync(RawMqttClient.Connect(4, "ka-silent-" + Guid.NewGuid().ToString("N"), keepAlive: 1, willTopic: willTopic, willPayload: "expired"));
        Assert.Equal(0x20, (await silent.ReadPacketAsync())!.Value.Header);
        Assert.Empty(await silent.ReadUntilClosedAsync(TimeSpan.FromSeconds(15)));

        var (header, body) = (await watcher.ReadPacketAsync(TimeSpan.FromSeconds(15)))!.Value;
        Assert.Equal(0x30, header & 0xF0);
        Assert.EndsWith("expired", Encoding.UTF8.GetString(body), StringComparison.Ordinal);
    }

    private async Task RoundTripAsync(Func<MqttClientOptionsBuilder, MqttClientOptionsBuilder> transport)
    {
        var topic = $"transport/{Guid.NewGuid():N}";
        using var sub = new MqttClientFactory().CreateMqttClient();
        using var pub = new MqttClientFactory().CreateMqttClient();
        var received = new TaskCompletionSource<MqttApplicationMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        sub.ApplicationMessageReceivedAsync += e =>
        {
            received.TrySetResult(e.ApplicationMessage);
            return Task.CompletedTask;
        };
        await sub.ConnectAsync(transport(new MqttClientOptionsBuilder().WithProtocolVersion(MqttProtocolVersion.V500)).Build());
        await pub.ConnectAsync(transport(new MqttClientOptionsBuilder().WithProtocolVersion(MqttProtocolVersion.V311)).Build());
        await sub.SubscribeAsync(topic, MqttQualityOfServiceLevel.ExactlyOnce);
        var ack = await pub.PublishStringAsync(topic, "over the wire", MqttQualityOfServiceLevel.AtLeastOnce);
        Assert.True(ack.IsSuccess);
        var message = await received.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("over the wire", message.ConvertPayloadToString());
        Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, message.QualityOfServiceLevel);
    }
}
