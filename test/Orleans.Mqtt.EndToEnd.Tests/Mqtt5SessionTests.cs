using System.Diagnostics;
using System.Text;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// MQTT 5 behaviour owned by the session and topic grains, on the wire: will delay, session expiry by the active
/// sweep, message expiry, subscription options, shared subscriptions and $SYS topics.
/// </summary>
[Collection(SharedBrokerCollection.Name)]
public sealed class Mqtt5SessionTests(SharedBroker shared)
{
    private readonly BrokerProcess _broker = shared.Broker;

    [Fact]
    public async Task Delayed_will_waits_for_its_delay_and_a_reconnect_cancels_it()
    {
        var willTopic = $"e2e/will-delay/{Guid.NewGuid():N}";
        await using var watcher = await Mosquitto.SubscribeAsync(_broker.MqttPort, "mqttv5", "-q", "1", "-t", willTopic + "/#");

        // Cancelled: will delay 2 s, and the same session reconnects right after the kill.
        var cancelledId = "wd-cancel-" + Guid.NewGuid().ToString("N")[..8];
        await using var cancelled = await Mosquitto.SubscribeAsync(_broker.MqttPort, "mqttv5", "-i", cancelledId, "-c", "-x", "60", "-t", willTopic + "/unused",
            "--will-topic", willTopic + "/cancelled", "--will-payload", "must-not-arrive", "-D", "will", "will-delay-interval", "2");

        // Control: will delay 3 s, no reconnect; it marks when the cancelled will would have been long due.
        await using var control = await Mosquitto.SubscribeAsync(_broker.MqttPort, "mqttv5", "-x", "60", "-t", willTopic + "/unused",
            "--will-topic", willTopic + "/control", "--will-payload", "delayed", "-D", "will", "will-delay-interval", "3");

        var killed = Stopwatch.StartNew();
        await cancelled.KillAsync();
        await control.KillAsync();
        await using var back = await Mosquitto.SubscribeAsync(_broker.MqttPort, "mqttv5", "-i", cancelledId, "-c", "-x", "60", "-t", willTopic + "/unused");

        var line = await watcher.WaitForLineAsync(l => Mosquitto.IsMessage(l) && l.Contains("/control|", StringComparison.Ordinal));
        Assert.Equal("delayed", Mosquitto.Parse(line).Payload);
        Assert.True(killed.Elapsed >= TimeSpan.FromSeconds(2.5), $"will arrived after {killed.Elapsed}, before its 3 s delay");
        Assert.DoesNotContain(watcher.Lines, l => l.Contains("must-not-arrive", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Session_expiry_ends_the_session_actively_publishes_its_pending_will_and_removes_its_subscriptions()
    {
        var id = "expiring-" + Guid.NewGuid().ToString("N")[..8];
        var topic = "e2e/expiring/" + id;
        await using var watcher = await Mosquitto.SubscribeAsync(_broker.MqttPort, "mqttv5", "-q", "1", "-t", topic + "/will");

        // Session expiry 1 s, will delay 60 s: the session ends first, and the will goes out then [MQTT-3.1.3-9].
        await using (var client = await Mosquitto.SubscribeAsync(_broker.MqttPort, "mqttv5", "-i", id, "-c", "-x", "1", "-q", "1", "-t", topic + "/data",
            "--will-topic", topic + "/will", "--will-payload", "session-ended", "-D", "will", "will-delay-interval", "60"))
        {
            var killed = Stopwatch.StartNew();
            await client.KillAsync();
            var will = Mosquitto.Parse(await watcher.WaitForLineAsync(Mosquitto.IsMessage, TimeSpan.FromSeconds(15)));
            Assert.Equal("session-ended", will.Payload);
            Assert.True(killed.Elapsed >= TimeSpan.FromSeconds(0.9), $"will after {killed.Elapsed}");
        }

        // Without the client coming back, its subscription is gone: a QoS 1 publish finds no subscriber (0x10).
        using var publisher = await ConnectAsync();
        var result = await publisher.PublishAsync(new MqttApplicationMessageBuilder()
            .WithTopic(topic + "/data").WithPayload("x").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal(MqttClientPublishReasonCode.NoMatchingSubscribers, result.ReasonCode);
    }

    [Fact]
    public async Task Queued_messages_expire_and_the_rest_carry_the_remaining_interval()
    {
        var id = "msg-expiry-" + Guid.NewGuid().ToString("N")[..8];
        var topic = "e2e/msg-expiry/" + id;
        using (var subscriber = await ConnectAsync(id, cleanStart: true, sessionExpiry: 300))
        {
            await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
            await subscriber.DisconnectAsync();
        }

        using var publisher = await ConnectAsync();
        await publisher.PublishAsync(Message(topic, "short", expiry: 1));
        await publisher.PublishAsync(Message(topic, "long", expiry: 60));
        await publisher.PublishAsync(Message(topic, "forever", expiry: 0));

        // Expiry is wall-clock time: let the short one's second pass.
        await Task.Delay(TimeSpan.FromSeconds(2.2));

        var received = new List<MqttApplicationMessage>();
        var gotTwo = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var resumed = new MqttClientFactory().CreateMqttClient();
        resumed.ApplicationMessageReceivedAsync += e =>
        {
            lock (received)
            {
                received.Add(e.ApplicationMessage);
                if (received.Count == 2)
                {
                    gotTwo.TrySetResult();
                }
            }

            return Task.CompletedTask;
        };
        var connack = await resumed.ConnectAsync(Options(id, cleanStart: false, sessionExpiry: 300));
        Assert.True(connack.IsSessionPresent);
        await gotTwo.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(["long", "forever"], received.Select(m => m.ConvertPayloadToString()));
        Assert.InRange(received[0].MessageExpiryInterval, 1u, 58u);
        Assert.Equal(0u, received[1].MessageExpiryInterval);
    }

    [Fact]
    public async Task Subscription_options_no_local_retain_as_published_retain_handling_and_identifiers()
    {
        var topic = $"e2e/options/{Guid.NewGuid():N}";
        using var publisher = await ConnectAsync();
        await publisher.PublishAsync(Message(topic + "/r", "retained", retain: true));

        var inbox = new Inbox();
        using var client = await ConnectAsync();
        client.ApplicationMessageReceivedAsync += inbox.Handler;
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic(topic + "/own").WithNoLocal())
            .Build());
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic(topic + "/r").WithRetainAsPublished().WithRetainHandling(MqttRetainHandling.SendAtSubscribeIfNewSubscriptionOnly))
            .WithSubscriptionIdentifier(7)
            .Build());
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic(topic + "/+").WithRetainHandling(MqttRetainHandling.DoNotSendOnSubscribe))
            .WithSubscriptionIdentifier(9)
            .Build());

        // Retain handling 1, new subscription: the retained message arrives, retain flag set, identifier 7 only.
        var first = await inbox.NextAsync();
        Assert.Equal("retained", first.ConvertPayloadToString());
        Assert.True(first.Retain);
        Assert.Equal([7u], first.SubscriptionIdentifiers);

        // Subscribing again to an existing subscription with retain handling 1 sends nothing; with 0 it would.
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic(topic + "/r").WithRetainAsPublished().WithRetainHandling(MqttRetainHandling.SendAtSubscribeIfNewSubscriptionOnly))
            .WithSubscriptionIdentifier(7)
            .Build());

        // No local: its own publish to /own is not sent back; another client's is. Both overlapping identifiers
        // (/own matches "/+" too, identifier 9) come with a message that matches both subscriptions.
        await client.PublishAsync(Message(topic + "/own", "mine"));
        await publisher.PublishAsync(Message(topic + "/own", "theirs"));
        var own = await inbox.NextAsync();
        Assert.Equal("mine", own.ConvertPayloadToString());
        Assert.Equal([9u], own.SubscriptionIdentifiers);
        var theirs = await inbox.NextAsync();
        Assert.Equal("theirs", theirs.ConvertPayloadToString());
        Assert.Equal([9u], theirs.SubscriptionIdentifiers);

        // Retain as published: a live retained publish keeps its retain flag on /r (identifiers 7 and 9).
        await publisher.PublishAsync(Message(topic + "/r", "live", retain: true));
        var live = await inbox.NextAsync();
        Assert.Equal("live", live.ConvertPayloadToString());
        Assert.True(live.Retain);
        Assert.Equal([7u, 9u], live.SubscriptionIdentifiers.Order());
        Assert.True(inbox.IsEmpty);
    }

    [Fact]
    public async Task Shared_subscription_spreads_messages_and_another_member_takes_over_what_a_leaving_member_did_not_acknowledge()
    {
        var topic = $"e2e/shared/{Guid.NewGuid():N}";
        var filter = "$share/workers/" + topic;
        using var publisher = await ConnectAsync();
        await publisher.PublishAsync(Message(topic, "retained-not-for-shares", retain: true));

        var inboxes = new[] { new Inbox(), new Inbox(), new Inbox() };
        var members = new List<IMqttClient>();
        foreach (var (inbox, version) in inboxes.Zip([MqttProtocolVersion.V500, MqttProtocolVersion.V500, MqttProtocolVersion.V311]))
        {
            var member = await ConnectAsync(version: version);
            member.ApplicationMessageReceivedAsync += inbox.Handler;
            await member.SubscribeAsync(filter, MqttQualityOfServiceLevel.AtLeastOnce);
            members.Add(member);
        }

        for (var i = 0; i < 9; i++)
        {
            await publisher.PublishAsync(Message(topic, $"m{i}", qos: MqttQualityOfServiceLevel.AtLeastOnce));
        }

        var all = new List<string>();
        foreach (var inbox in inboxes)
        {
            for (var i = 0; i < 3; i++)
            {
                all.Add((await inbox.NextAsync()).ConvertPayloadToString());
            }
        }

        Assert.Equal(Enumerable.Range(0, 9).Select(i => $"m{i}"), all.Order());
        Assert.All(inboxes, i => Assert.True(i.IsEmpty));

        // A member that does not acknowledge and leaves: its message goes to another member.
        inboxes[0].AutoAcknowledge = false;
        for (var i = 0; i < 3; i++)
        {
            await publisher.PublishAsync(Message(topic, $"n{i}", qos: MqttQualityOfServiceLevel.AtLeastOnce));
        }

        var unacknowledged = (await inboxes[0].NextAsync()).ConvertPayloadToString();
        await inboxes[1].NextAsync();
        await inboxes[2].NextAsync();
        members[0].Dispose();
        var moved = await Task.WhenAny(inboxes[1].NextAsync(), inboxes[2].NextAsync()).Unwrap();
        Assert.Equal(unacknowledged, moved.ConvertPayloadToString());

        foreach (var m in members.Skip(1))
        {
            m.Dispose();
        }
    }

    [Fact]
    public async Task Sys_topics_are_published_and_not_matched_by_leading_wildcards()
    {
        var sys = new Inbox();
        using var sysClient = await ConnectAsync();
        sysClient.ApplicationMessageReceivedAsync += sys.Handler;
        await sysClient.SubscribeAsync("$SYS/broker/#");

        var topics = new Dictionary<string, string>();
        while (!topics.ContainsKey("$SYS/broker/uptime") || !topics.ContainsKey("$SYS/broker/clients/connected") || !topics.ContainsKey("$SYS/broker/subscriptions/count"))
        {
            var m = await sys.NextAsync();
            topics[m.Topic] = m.ConvertPayloadToString();
        }

        Assert.StartsWith("Orleans.Mqtt", topics.GetValueOrDefault("$SYS/broker/version") ?? (await WaitForTopicAsync(sys, "$SYS/broker/version")));
        Assert.EndsWith("seconds", topics["$SYS/broker/uptime"]);

        // The count is the sum of the gateways' last reports (ClusterStatsAggregator): the retained value served at
        // subscribe, and a publication soon after, may come from a report made before this client connected; a later
        // publication counts it.
        var patience = System.Diagnostics.Stopwatch.StartNew();
        long connected;
        while ((connected = long.Parse(await WaitForTopicAsync(sys, "$SYS/broker/clients/connected"))) < 1 && patience.Elapsed < TimeSpan.FromSeconds(30))
        {
        }

        Assert.True(connected >= 1, $"$SYS/broker/clients/connected still {connected} after {patience.Elapsed}");

        // "#" and "+/broker/#" get no $SYS message, neither retained at subscribe nor live.
        var wide = new Inbox();
        using var wideClient = await ConnectAsync();
        wideClient.ApplicationMessageReceivedAsync += wide.Handler;
        await wideClient.SubscribeAsync("#");
        await wideClient.SubscribeAsync("+/broker/#");
        await WaitForTopicAsync(sys, "$SYS/broker/uptime");
        await WaitForTopicAsync(sys, "$SYS/broker/uptime");
        var marker = $"e2e/sys-marker/{Guid.NewGuid():N}";
        await sysClient.PublishAsync(Message(marker, "marker"));
        while ((await wide.NextAsync()).Topic != marker)
        {
        }

        Assert.DoesNotContain(wide.Seen, t => t.StartsWith('$'));

        // The message counter counts: after five more publishes, a later publication of it has grown by at least five.
        var before = long.Parse(await WaitForTopicAsync(sys, "$SYS/broker/messages/received"));
        for (var i = 0; i < 5; i++)
        {
            await sysClient.PublishAsync(Message(marker, "counted"));
        }

        var after = before;
        for (var publication = 0; publication < 5 && after < before + 5; publication++)
        {
            after = long.Parse(await WaitForTopicAsync(sys, "$SYS/broker/messages/received"));
        }

        Assert.True(after >= before + 5, $"$SYS/broker/messages/received went from {before} to {after} over five publishes");
    }

    [Fact]
    public async Task Request_response_properties_and_user_properties_pass_through_unchanged()
    {
        var topic = $"e2e/properties/{Guid.NewGuid():N}";
        var inbox = new Inbox();
        using var subscriber = await ConnectAsync();
        subscriber.ApplicationMessageReceivedAsync += inbox.Handler;
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);

        using var publisher = await ConnectAsync();
        await publisher.PublishAsync(new MqttApplicationMessageBuilder()
            .WithTopic(topic)
            .WithPayload("{\"on\":true}")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
            .WithContentType("application/json")
            .WithResponseTopic(topic + "/reply")
            .WithCorrelationData([1, 2, 3, 0, 255])
            .WithPayloadFormatIndicator(MqttPayloadFormatIndicator.CharacterData)
            .WithUserProperty("b", Encoding.UTF8.GetBytes("2").AsMemory())
            .WithUserProperty("a", Encoding.UTF8.GetBytes("1").AsMemory())
            .WithUserProperty("b", Encoding.UTF8.GetBytes("3").AsMemory())
            .Build());

        var m = await inbox.NextAsync();
        Assert.Equal("{\"on\":true}", m.ConvertPayloadToString());
        Assert.Equal("application/json", m.ContentType);
        Assert.Equal(topic + "/reply", m.ResponseTopic);
        Assert.Equal([1, 2, 3, 0, 255], m.CorrelationData);
        Assert.Equal(MqttPayloadFormatIndicator.CharacterData, m.PayloadFormatIndicator);
        Assert.Equal([("b", "2"), ("a", "1"), ("b", "3")], m.UserProperties.Select(p => (p.Name, Encoding.UTF8.GetString(p.ValueBuffer.Span))));
    }

    [Fact]
    public async Task Keep_alive_timeout_sends_disconnect_0x8D_to_an_mqtt5_client()
    {
        await using var silent = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await silent.SendAsync(RawMqttClient.Connect(5, "ka5-" + Guid.NewGuid().ToString("N"), keepAlive: 1));
        Assert.Equal(0x20, (await silent.ReadPacketAsync())!.Value.Header);
        var packets = await silent.ReadUntilClosedAsync(TimeSpan.FromSeconds(15));
        var (header, body) = Assert.Single(packets);
        Assert.Equal(0xE0, header);
        Assert.Equal(0x8D, body[0]);
    }

    [Fact]
    public async Task No_local_on_a_shared_subscription_is_a_protocol_error()
    {
        var (client, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "share-nolocal-" + Guid.NewGuid().ToString("N"));
        await using (client)
        {
            // Options byte: QoS 1 with the No Local bit (0x04) [MQTT-3.8.3-4].
            await client.SendAsync(RawMqttClient.Subscribe(1, true, ("$share/g/e2e/nolocal", 0x05)));
            await Mqtt5Raw.AssertDisconnectedAsync(client, 0x82);
        }
    }

    [Fact]
    public async Task A_failing_pubrec_ends_the_qos2_exchange_without_pubrel()
    {
        var topic = $"e2e/pubrec-failure/{Guid.NewGuid():N}";
        var (subscriber, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "pubrec-fail-" + Guid.NewGuid().ToString("N"));
        await using (subscriber)
        {
            await Mqtt5Raw.SubscribeAsync(subscriber, topic, 2);
            using var publisher = await ConnectAsync();
            await publisher.PublishAsync(Message(topic, "refused", qos: MqttQualityOfServiceLevel.ExactlyOnce));
            var first = ReceivedPublish.Parse(await subscriber.ReadPacketAsync());
            Assert.Equal("refused", first.PayloadText);

            // PUBREC with 0x80 (unspecified error): the broker sends no PUBREL, and the next message comes through.
            await subscriber.SendAsync(RawMqttClient.Packet(0x50, [(byte)(first.PacketId >> 8), (byte)first.PacketId, 0x80, 0]));
            await publisher.PublishAsync(Message(topic, "next", qos: MqttQualityOfServiceLevel.ExactlyOnce));
            var next = await subscriber.ReadPacketAsync();
            Assert.Equal(0x30, next!.Value.Header & 0xF0);
            Assert.Equal("next", ReceivedPublish.Parse(next).PayloadText);
        }
    }

    private static async Task<string> WaitForTopicAsync(Inbox inbox, string topic)
    {
        while (true)
        {
            var m = await inbox.NextAsync();
            if (m.Topic == topic)
            {
                return m.ConvertPayloadToString();
            }
        }
    }

    private static MqttApplicationMessage Message(string topic, string payload, uint expiry = 0, bool retain = false, MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtLeastOnce)
    {
        var builder = new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(Encoding.UTF8.GetBytes(payload)).WithQualityOfServiceLevel(qos).WithRetainFlag(retain);
        if (expiry > 0)
        {
            builder.WithMessageExpiryInterval(expiry);
        }

        return builder.Build();
    }

    private MqttClientOptions Options(string? clientId = null, bool cleanStart = true, uint sessionExpiry = 0, MqttProtocolVersion version = MqttProtocolVersion.V500) =>
        MqttClients.Options(_broker.MqttPort, clientId, cleanStart, sessionExpiry, version);

    private Task<IMqttClient> ConnectAsync(string? clientId = null, bool cleanStart = true, uint sessionExpiry = 0, MqttProtocolVersion version = MqttProtocolVersion.V500) =>
        MqttClients.ConnectAsync(_broker.MqttPort, clientId, cleanStart, sessionExpiry, version);

    /// <summary>Messages a client receives, in order, awaited one at a time.</summary>
    private sealed class Inbox
    {
        private readonly System.Threading.Channels.Channel<MqttApplicationMessage> _messages = System.Threading.Channels.Channel.CreateUnbounded<MqttApplicationMessage>();
        private readonly List<string> _seen = [];

        public bool AutoAcknowledge { get; set; } = true;

        public bool IsEmpty => _messages.Reader.Count == 0;

        public IReadOnlyList<string> Seen
        {
            get
            {
                lock (_seen)
                {
                    return [.. _seen];
                }
            }
        }

        public Task Handler(MqttApplicationMessageReceivedEventArgs e)
        {
            e.AutoAcknowledge = AutoAcknowledge;
            lock (_seen)
            {
                _seen.Add(e.ApplicationMessage.Topic);
            }

            _messages.Writer.TryWrite(e.ApplicationMessage);
            return Task.CompletedTask;
        }

        public async Task<MqttApplicationMessage> NextAsync()
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            return await _messages.Reader.ReadAsync(cts.Token);
        }
    }
}
