using System.Diagnostics;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;
using P = Orleans.Mqtt.EndToEnd.Tests.Infrastructure.Mqtt5Properties;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// A broker with small per-client limits: 20 publishes per second with a burst of 5, 3 subscriptions per session,
/// topics of at most 64 characters and 4 levels.
/// </summary>
public sealed class ClientLimitsBroker() : ConfiguredBroker(new()
{
    ["Mqtt__Limits__MessagesPerSecond"] = Rate.ToString(),
    ["Mqtt__Limits__MessageBurst"] = Burst.ToString(),
    ["Mqtt__Limits__MaxSubscriptionsPerClient"] = "3",
    ["Mqtt__Limits__MaxTopicLength"] = "64",
    ["Mqtt__Limits__MaxTopicLevels"] = "4",
})
{
    public const int Rate = 20;
    public const int Burst = 5;
}

/// <summary>Mqtt:Limits on the real process: each refusal with its reason code, and counted.</summary>
public sealed class RateLimitTests(ClientLimitsBroker fixture) : IClassFixture<ClientLimitsBroker>
{
    private const int Rate = ClientLimitsBroker.Rate;
    private const int Burst = ClientLimitsBroker.Burst;
    private readonly BrokerProcess _broker = fixture.Broker;

    [Theory]
    [InlineData(5)]
    [InlineData(4)]
    public async Task Qos0_over_the_message_rate_is_dropped_and_counted(byte level)
    {
        var received = await _broker.GetCounterAsync("mqtt_messages_received_total", "qos=\"0\"");
        var dropped = await _broker.GetCounterAsync("mqtt_messages_dropped_total", "reason=\"rate_limited\"");
        await using var client = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, $"rate-q0-{level}-{Guid.NewGuid():N}");

        const int Sent = 40;
        var started = Stopwatch.GetTimestamp();
        await client.SendAsync([.. Enumerable.Range(0, Sent).SelectMany(_ => RawMqttClient.Publish("rate/q0", [1], v5: level == 5))]);
        await PingAsync(client);
        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;

        var routed = await _broker.GetCounterAsync("mqtt_messages_received_total", "qos=\"0\"") - received;
        var limited = await _broker.GetCounterAsync("mqtt_messages_dropped_total", "reason=\"rate_limited\"") - dropped;
        Assert.Equal(Sent, routed + limited);
        Assert.InRange(routed, Burst, Burst + (Rate * elapsed) + 1);
    }

    [Fact]
    public async Task Mqtt5_qos1_over_the_message_rate_gets_puback_0x97_and_is_counted()
    {
        var before = await _broker.GetCounterAsync("mqtt_publishes_refused_total", "reason=\"rate_limited\"");
        var (client, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "rate-q1-" + Guid.NewGuid().ToString("N"));
        await using var _ = client;

        const int Sent = 15;
        var started = Stopwatch.GetTimestamp();
        await client.SendAsync([.. Enumerable.Range(1, Sent).SelectMany(id => RawMqttClient.Publish("rate/q1", [1], qos: 1, packetId: (ushort)id, v5: true))]);
        var codes = new List<byte>();
        for (var i = 0; i < Sent; i++)
        {
            var (header, body) = (await client.ReadPacketAsync())!.Value;
            Assert.Equal(0x40, header);
            codes.Add(body.Length > 2 ? body[2] : (byte)0);
        }

        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var accepted = codes.Count(c => c < 0x80);
        Assert.All(codes, c => Assert.True(c is 0x00 or 0x10 or 0x97, $"PUBACK reason 0x{c:X2}"));
        Assert.InRange(accepted, Burst, Burst + (Rate * elapsed) + 1);
        Assert.Equal(Sent - accepted, await _broker.GetCounterAsync("mqtt_publishes_refused_total", "reason=\"rate_limited\"") - before);
    }

    [Fact]
    public async Task Mqtt311_qos1_over_the_message_rate_is_paced_and_nothing_is_dropped()
    {
        var topic = "rate/paced/" + Guid.NewGuid().ToString("N");
        var delayed = await _broker.GetCounterAsync("mqtt_publishes_delayed_total", "reason=\"rate_limited\"");
        await using var subscriber = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "paced-sub-" + Guid.NewGuid().ToString("N"));
        await subscriber.SendAsync(RawMqttClient.Subscribe(1, false, (topic, 1)));
        Assert.Equal(0x90, (await subscriber.ReadPacketAsync())!.Value.Header);
        await using var publisher = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "paced-pub-" + Guid.NewGuid().ToString("N"));

        const int Sent = 25;
        var started = Stopwatch.GetTimestamp();
        await publisher.SendAsync([.. Enumerable.Range(1, Sent).SelectMany(id => RawMqttClient.Publish(topic, [(byte)id], qos: 1, packetId: (ushort)id))]);
        for (var i = 0; i < Sent; i++)
        {
            Assert.Equal(0x40, (await publisher.ReadPacketAsync())!.Value.Header);
        }

        // Held to the rate: the packets past the burst took at least (Sent - Burst) / Rate seconds to be let in.
        Assert.True(Stopwatch.GetElapsedTime(started).TotalSeconds >= (Sent - Burst) / (double)Rate * 0.9);
        Assert.True(await _broker.GetCounterAsync("mqtt_publishes_delayed_total", "reason=\"rate_limited\"") - delayed >= 1);

        var payloads = new List<byte>();
        for (var i = 0; i < Sent; i++)
        {
            var publish = ReceivedPublish.Parse(await subscriber.ReadPacketAsync(), v5: false);
            payloads.Add(publish.Payload[0]);
            await subscriber.SendAsync(RawMqttClient.PubAck(publish.PacketId));
        }

        Assert.Equal(Enumerable.Range(1, Sent).Select(i => (byte)i), payloads);
    }

    [Fact]
    public async Task Subscriptions_over_the_maximum_get_quota_exceeded_counting_those_kept_from_an_earlier_connection()
    {
        var before = await _broker.GetCounterAsync("mqtt_subscriptions_refused_total", "reason=\"quota_exceeded\"");
        var clientId = "max-subs-" + Guid.NewGuid().ToString("N");
        var sessionExpiry = P.Of(P.FourByte(P.SessionExpiryInterval, 300));
        var (first, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId, sessionExpiry);
        await using (first)
        {
            Assert.Equal([0, 0, 0], await SubAckAsync(first, true, ("subs/1", 0), ("subs/2", 0), ("subs/3", 0)));

            // Replacing a held subscription adds none; a fourth one is over the limit.
            Assert.Equal([1, 0x97], await SubAckAsync(first, true, ("subs/1", 1), ("subs/4", 0)));
            await first.SendAsync(RawMqttClient.Disconnect());
        }

        var (second, _, sessionPresent) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, clientId, sessionExpiry, cleanStart: false);
        await using (second)
        {
            Assert.True(sessionPresent);
            Assert.Equal([0x97], await SubAckAsync(second, true, ("subs/5", 0)));
        }

        await using var v311 = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "max-subs-311-" + Guid.NewGuid().ToString("N"));
        Assert.Equal([0, 0, 0, 0x80], await SubAckAsync(v311, false, ("s/1", 0), ("s/2", 0), ("s/3", 0), ("s/4", 0)));

        Assert.Equal(3, await _broker.GetCounterAsync("mqtt_subscriptions_refused_total", "reason=\"quota_exceeded\"") - before);
    }

    [Fact]
    public async Task Topics_over_the_length_or_level_limit_get_topic_name_invalid()
    {
        var tooLong = "long/" + new string('x', 60);
        var tooDeep = "a/b/c/d/e";
        var (client, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "topic-limits-" + Guid.NewGuid().ToString("N"));
        await using (client)
        {
            Assert.Equal(0x90, await Mqtt5Raw.PublishAsync(client, tooLong, "x", 1, 1));
            Assert.Equal(0x90, await Mqtt5Raw.PublishAsync(client, tooDeep, "x", 2, 2));
            Assert.True(await Mqtt5Raw.PublishAsync(client, "a/b/c/" + new string('y', 58), "x", 1, 3) < 0x80);
            Assert.Equal([0x8F, 0x8F, 1], await SubAckAsync(client, true, (tooLong, 0), ("a/+/c/d/#", 0), ("$share/g/a/b/c/d", 1)));

            // QoS 0 has no acknowledgement to carry the refusal: the connection is closed with it.
            await client.SendAsync(RawMqttClient.Publish(tooLong, [1], v5: true));
            await Mqtt5Raw.AssertDisconnectedAsync(client, 0x90);
        }

        await using (var v311 = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "topic-limits-311-" + Guid.NewGuid().ToString("N")))
        {
            Assert.Equal([0x80, 0], await SubAckAsync(v311, false, (tooDeep, 0), ("a/b", 0)));
            await v311.SendAsync(RawMqttClient.Publish(tooDeep, [1], qos: 1, packetId: 1));
            await v311.AssertClosedByServerAsync(4, 0);
        }

        await using var will = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await will.SendAsync(RawMqttClient.Connect(5, "topic-limits-will-" + Guid.NewGuid().ToString("N"), willTopic: tooLong, willPayload: "x"));
        var (header, body) = (await will.ReadPacketAsync())!.Value;
        Assert.Equal(0x20, header);
        Assert.Equal(0x90, body[1]);

        Assert.True(await _broker.GetCounterAsync("mqtt_subscriptions_refused_total", "reason=\"topic_too_many_levels\"") >= 2);
        Assert.True(await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"topic_too_long\"") >= 2);
    }

    /// <summary>Sends a PINGREQ and waits for its PINGRESP: everything the client sent before it has been read.</summary>
    private static async Task PingAsync(RawMqttClient client)
    {
        await client.SendAsync([0xC0, 0x00]);
        Assert.Equal(0xD0, (await client.ReadPacketAsync())!.Value.Header);
    }

    private static async Task<byte[]> SubAckAsync(RawMqttClient client, bool v5, params (string Filter, byte Qos)[] filters)
    {
        await client.SendAsync(RawMqttClient.Subscribe(7, v5, filters));
        var (header, body) = (await client.ReadPacketAsync())!.Value;
        Assert.Equal(0x90, header);
        return v5 ? body[(2 + 1 + body[2])..] : body[2..];
    }
}

/// <summary>
/// A broker that is overloaded from its first sample (a managed heap budget of one byte) and whose listeners accept 1
/// connection per second with a burst of 2.
/// </summary>
public sealed class OverloadedBroker() : ConfiguredBroker(new()
{
    ["Mqtt__Overload__MemoryBudgetBytes"] = "1",
    ["Mqtt__Limits__ConnectionsPerSecond"] = "1",
    ["Mqtt__Limits__ConnectionBurst"] = "2",
});

/// <summary>Mqtt:Overload and Mqtt:Limits:ConnectionsPerSecond on the real process.</summary>
public sealed class OverloadTests(OverloadedBroker fixture) : IClassFixture<OverloadedBroker>
{
    private readonly BrokerProcess _broker = fixture.Broker;

    [Fact]
    public async Task A_connect_storm_is_held_to_the_listener_rate_and_an_overloaded_gateway_answers_server_busy()
    {
        Assert.Equal(1, await _broker.GetCounterAsync("mqtt_overload_state"));
        var busyBefore = await _broker.GetCounterAsync("mqtt_connections_refused_total", "reason=\"server_busy\"");
        var rateBefore = await _broker.GetCounterAsync("mqtt_connections_refused_total", "reason=\"connection_rate_exceeded\"");

        const int Storm = 20;
        var started = Stopwatch.GetTimestamp();
        var codes = await Task.WhenAll(Enumerable.Range(0, Storm).Select(i => ConnAckCodeAsync(5, $"storm-{i}-{Guid.NewGuid():N}")));
        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;

        // Within the rate (the burst of 2, and 1 more per second of the storm): refused as overloaded, 0x89; the rest 0x9F.
        var busy = codes.Count(c => c == 0x89);
        Assert.All(codes, c => Assert.True(c is 0x89 or 0x9F, $"CONNACK reason 0x{c:X2}"));
        Assert.InRange(busy, 2, 2 + elapsed + 1);
        Assert.Equal(busy, await _broker.GetCounterAsync("mqtt_connections_refused_total", "reason=\"server_busy\"") - busyBefore);
        Assert.Equal(Storm - busy, await _broker.GetCounterAsync("mqtt_connections_refused_total", "reason=\"connection_rate_exceeded\"") - rateBefore);

        // MQTT 3.1.1 has one return code for both: 3, server unavailable.
        Assert.Equal(3, await ConnAckCodeAsync(4, "storm-311-" + Guid.NewGuid().ToString("N")));
        await _broker.WaitForOutputAsync(l => l.Contains("Gateway overloaded: managed heap", StringComparison.Ordinal));
    }

    private async Task<byte> ConnAckCodeAsync(byte level, string clientId)
    {
        await using var client = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await client.SendAsync(RawMqttClient.Connect(level, clientId));
        var (header, body) = (await client.ReadPacketAsync())!.Value;
        Assert.Equal(0x20, header);
        return body[1];
    }
}
