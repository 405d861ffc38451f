using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>The standalone broker with Debian's mosquitto_pub / mosquitto_sub, MQTT 3.1.1 and 5.0.</summary>
[Collection(SharedBrokerCollection.Name)]
public sealed class MosquittoInteropTests(SharedBroker shared)
{
    private readonly BrokerProcess _broker = shared.Broker;

    public static TheoryData<string> Versions => new() { "mqttv311", "mqttv5" };

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task Received_qos_is_the_minimum_of_publish_and_subscribe_qos(string version)
    {
        for (var subQos = 0; subQos <= 2; subQos++)
        {
            var topic = $"e2e/qos/{version}/{subQos}/{Guid.NewGuid():N}";
            await using var sub = await Mosquitto.SubscribeAsync(_broker.MqttPort, version, "-q", subQos.ToString(), "-t", topic, "-C", "3");
            for (var pubQos = 0; pubQos <= 2; pubQos++)
            {
                await Mosquitto.PublishAsync(_broker.MqttPort, version, "-q", pubQos.ToString(), "-t", topic, "-m", $"p{pubQos}");
            }

            var received = (await sub.WaitForLinesAsync(Mosquitto.IsMessage, 3)).Select(Mosquitto.Parse).ToList();
            Assert.Equal(3, received.Count);
            foreach (var (qos, retain, t, payload) in received)
            {
                var pubQos = payload[1] - '0';
                Assert.Equal(topic, t);
                Assert.False(retain);
                Assert.Equal(Math.Min(pubQos, subQos), qos);
            }

            Assert.Equal(["p0", "p1", "p2"], received.Select(r => r.Payload).Order());
        }
    }

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task Retained_message_is_set_replaced_and_cleared(string version)
    {
        var topic = $"e2e/retained/{version}/{Guid.NewGuid():N}";
        var marker = topic + "/marker";
        await Mosquitto.PublishAsync(_broker.MqttPort, version, "-q", "1", "-r", "-t", topic, "-m", "first");
        await Mosquitto.PublishAsync(_broker.MqttPort, version, "-q", "1", "-r", "-t", topic, "-m", "second");
        await Mosquitto.PublishAsync(_broker.MqttPort, version, "-q", "1", "-r", "-t", marker, "-m", "marker");

        await using (var sub = await Mosquitto.SubscribeAsync(_broker.MqttPort, version, "-q", "1", "-t", topic, "-C", "1"))
        {
            var (qos, retain, _, payload) = Mosquitto.Parse(await sub.WaitForLineAsync(Mosquitto.IsMessage));
            Assert.Equal("second", payload);
            Assert.True(retain);
            Assert.Equal(1, qos);
        }

        // An empty retained payload deletes it: a new subscriber to both topics gets only the marker.
        await Mosquitto.PublishAsync(_broker.MqttPort, version, "-q", "1", "-r", "-t", topic, "-n");
        await using (var sub = await Mosquitto.SubscribeAsync(_broker.MqttPort, version, "-q", "1", "-t", topic, "-t", marker, "-C", "1"))
        {
            var line = await sub.WaitForLineAsync(Mosquitto.IsMessage);
            Assert.Equal((1, true, marker, "marker"), Mosquitto.Parse(line));
            await sub.WaitForExitAsync(TimeSpan.FromSeconds(10));
            Assert.Single(sub.Lines, Mosquitto.IsMessage);
        }
    }

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task Will_is_published_when_the_client_is_killed_but_not_after_a_normal_disconnect(string version)
    {
        var willTopic = $"e2e/will/{version}/{Guid.NewGuid():N}";
        await using var watcher = await Mosquitto.SubscribeAsync(_broker.MqttPort, version, "-q", "1", "-t", willTopic + "/#");

        // A normal DISCONNECT discards the will: mosquitto_sub -C 1 disconnects cleanly after one message.
        var politeTopic = willTopic + "/polite";
        await using (var polite = await Mosquitto.SubscribeAsync(_broker.MqttPort, version, "-t", willTopic + "/trigger", "-C", "1",
            "--will-topic", politeTopic, "--will-payload", "polite-will", "--will-qos", "1"))
        {
            await Mosquitto.PublishAsync(_broker.MqttPort, version, "-t", willTopic + "/trigger", "-m", "bye");
            await polite.WaitForExitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(0, polite.ExitCode);
        }

        await using var victim = await Mosquitto.SubscribeAsync(_broker.MqttPort, version, "-t", willTopic + "/unused",
            "--will-topic", willTopic + "/gone", "--will-payload", "victim-will", "--will-qos", "1");
        await victim.KillAsync();

        var will = Mosquitto.Parse(await watcher.WaitForLineAsync(l => Mosquitto.IsMessage(l) && l.Contains("/gone|", StringComparison.Ordinal)));
        Assert.Equal("victim-will", will.Payload);

        // Both clients ended before the will arrived, so the polite one would have been seen by now.
        Assert.DoesNotContain(watcher.Lines, l => l.Contains("polite-will", StringComparison.Ordinal));
        Assert.Contains(watcher.Lines, l => l.Contains("/trigger|bye", StringComparison.Ordinal));
    }
}
