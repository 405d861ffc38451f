using System.Text;
using MQTTnet;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>Smaller normative statements of MQTT 5 checked on the wire (see test/MQTT5-NORMATIVE.md).</summary>
[Collection(SharedBrokerCollection.Name)]
public sealed class Mqtt5ConformanceTests(SharedBroker shared)
{
    private readonly BrokerProcess _broker = shared.Broker;

    [Fact]
    public async Task The_clients_receive_maximum_bounds_the_unacknowledged_qos1_messages_sent_to_it()
    {
        var topic = $"e2e/receive-max/{Guid.NewGuid():N}";

        // Receive Maximum 2 (property 0x21) [MQTT-3.3.4-9].
        var (client, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "rm-" + Guid.NewGuid().ToString("N"), Mqtt5Properties.Of(Mqtt5Properties.TwoByte(0x21, 2)));
        await using (client)
        {
            await Mqtt5Raw.SubscribeAsync(client, topic, 1);
            var (publisher, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "rm-pub-" + Guid.NewGuid().ToString("N"));
            await using (publisher)
            {
                for (var i = 0; i < 4; i++)
                {
                    await Mqtt5Raw.PublishAsync(publisher, topic, $"m{i}", 1, (ushort)(i + 1));
                }
            }

            var first = ReceivedPublish.Parse(await client.ReadPacketAsync());
            var second = ReceivedPublish.Parse(await client.ReadPacketAsync());
            Assert.Equal(["m0", "m1"], new[] { first.PayloadText, second.PayloadText });

            // Nothing more while both are unacknowledged: a bounded wait for a packet that must not come.
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.ReadPacketAsync(TimeSpan.FromMilliseconds(700)));

            // Each acknowledgement lets exactly one more through.
            await client.SendAsync(RawMqttClient.PubAck(first.PacketId));
            var third = ReceivedPublish.Parse(await client.ReadPacketAsync());
            Assert.Equal("m2", third.PayloadText);
            await client.SendAsync(RawMqttClient.PubAck(second.PacketId));
            Assert.Equal("m3", ReceivedPublish.Parse(await client.ReadPacketAsync()).PayloadText);
        }
    }

    [Fact]
    public async Task A_second_connect_is_a_protocol_error()
    {
        var (client, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "twice-" + Guid.NewGuid().ToString("N"));
        await using (client)
        {
            await client.SendAsync(RawMqttClient.Connect(5, "twice-again"));
            await Mqtt5Raw.AssertDisconnectedAsync(client, 0x82);
        }
    }

    [Fact]
    public async Task Qos_3_is_a_malformed_packet()
    {
        var (client, _, _) = await Mqtt5Raw.ConnectAsync(_broker.MqttPort, "qos3-" + Guid.NewGuid().ToString("N"));
        await using (client)
        {
            var publish = RawMqttClient.Publish("e2e/qos3", [1], qos: 1, packetId: 1, v5: true);
            publish[0] |= 0x06;
            await client.SendAsync(publish);
            await Mqtt5Raw.AssertDisconnectedAsync(client, 0x81);
        }
    }

    [Fact]
    public async Task A_non_retained_publish_leaves_the_retained_message_alone_and_forwarded_copies_carry_retain_0()
    {
        var topic = $"e2e/retain-flag/{Guid.NewGuid():N}";
        using var publisher = await ConnectAsync();
        await publisher.PublishAsync(Build(topic, "kept", retain: true));

        // A live subscriber without Retain As Published gets RETAIN 0 on a retained publish [MQTT-3.3.1-12].
        var live = new TaskCompletionSource<MqttApplicationMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscriber = await ConnectAsync();
        subscriber.ApplicationMessageReceivedAsync += e =>
        {
            if (!e.ApplicationMessage.Retain || e.ApplicationMessage.ConvertPayloadToString() != "kept")
            {
                live.TrySetResult(e.ApplicationMessage);
            }

            return Task.CompletedTask;
        };
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        await publisher.PublishAsync(Build(topic, "retained-live", retain: true));
        var forwarded = await live.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("retained-live", forwarded.ConvertPayloadToString());
        Assert.False(forwarded.Retain);

        // RETAIN 0 does not replace the retained message [MQTT-3.3.1-8].
        await publisher.PublishAsync(Build(topic, "not-retained", retain: false));
        var retained = new TaskCompletionSource<MqttApplicationMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var late = await ConnectAsync();
        late.ApplicationMessageReceivedAsync += e =>
        {
            retained.TrySetResult(e.ApplicationMessage);
            return Task.CompletedTask;
        };
        await late.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        var got = await retained.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("retained-live", got.ConvertPayloadToString());
        Assert.True(got.Retain);
    }

    private static MqttApplicationMessage Build(string topic, string payload, bool retain) =>
        new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(Encoding.UTF8.GetBytes(payload))
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag(retain).Build();

    private Task<IMqttClient> ConnectAsync() => MqttClients.ConnectAsync(_broker.MqttPort);
}
