using System.Text;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>MQTT 5 exchanges over <see cref="RawMqttClient"/> that several tests need.</summary>
public static class Mqtt5Raw
{
    /// <summary>Connects with MQTT 5; asserts CONNACK 0x00 and returns the client with the CONNACK's properties.</summary>
    public static async Task<(RawMqttClient Client, Dictionary<byte, byte[]> ConnAck, bool SessionPresent)> ConnectAsync(
        int port, string clientId, byte[]? properties = null, bool cleanStart = true, ushort keepAlive = 60, string? willTopic = null, string? willPayload = null, byte[]? willProperties = null)
    {
        var client = await RawMqttClient.ConnectAsync(port);
        await client.SendAsync(RawMqttClient.Connect(5, clientId, cleanStart, keepAlive, willTopic: willTopic, willPayload: willPayload, properties: properties, willProperties: willProperties));
        var (header, body) = await client.ReadPacketAsync() ?? throw new InvalidOperationException("closed before CONNACK");
        Assert.Equal(0x20, header);
        Assert.Equal(0, body[1]);
        return (client, Mqtt5Properties.Read(body, 2).Properties, (body[0] & 1) == 1);
    }

    /// <summary>Subscribes to one filter with MQTT 5 and waits for the SUBACK granting it.</summary>
    public static async Task SubscribeAsync(RawMqttClient client, string filter, byte qos, ushort packetId = 1)
    {
        await client.SendAsync(RawMqttClient.Subscribe(packetId, true, (filter, qos)));
        var (header, body) = (await client.ReadPacketAsync())!.Value;
        Assert.Equal(0x90, header);
        Assert.Equal(qos, body[^1]);
    }

    /// <summary>Publishes with MQTT 5 and completes the QoS 1/2 exchange; returns the PUBACK/PUBREC reason code (0 for QoS 0).</summary>
    public static async Task<byte> PublishAsync(RawMqttClient client, string topic, string payload, byte qos, ushort packetId = 1, byte[]? properties = null)
    {
        await client.SendAsync(RawMqttClient.Publish(topic, Encoding.UTF8.GetBytes(payload), qos, packetId, v5: true, properties: properties));
        if (qos == 0)
        {
            return 0;
        }

        var (header, body) = (await client.ReadPacketAsync())!.Value;
        Assert.Equal(qos == 1 ? 0x40 : 0x50, header);
        var reason = body.Length > 2 ? body[2] : (byte)0;
        if (qos == 2 && reason < 0x80)
        {
            await client.SendAsync(RawMqttClient.PubRel(packetId));
            Assert.Equal(0x70, (await client.ReadPacketAsync())!.Value.Header);
        }

        return reason;
    }

    /// <summary>Acknowledges a received QoS 1/2 PUBLISH completely (PUBACK, or PUBREC / PUBREL / PUBCOMP).</summary>
    public static async Task AcknowledgeAsync(RawMqttClient client, ReceivedPublish publish)
    {
        if (publish.Qos == 1)
        {
            await client.SendAsync(RawMqttClient.PubAck(publish.PacketId));
        }
        else if (publish.Qos == 2)
        {
            await client.SendAsync(RawMqttClient.PubRec(publish.PacketId));
            Assert.Equal(0x62, (await client.ReadPacketAsync())!.Value.Header);
            await client.SendAsync(RawMqttClient.PubComp(publish.PacketId));
        }
    }

    /// <summary>The server closes the connection after a DISCONNECT with <paramref name="reasonCode"/> as its last packet.</summary>
    public static async Task AssertDisconnectedAsync(RawMqttClient client, byte reasonCode, TimeSpan? timeout = null)
    {
        var packets = await client.ReadUntilClosedAsync(timeout);
        Assert.NotEmpty(packets);
        var (header, body) = packets[^1];
        Assert.Equal(0xE0, header);
        Assert.Equal(reasonCode, body[0]);
    }
}
