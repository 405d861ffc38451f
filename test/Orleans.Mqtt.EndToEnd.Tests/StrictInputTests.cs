using System.Text;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// Packets a fuzz run got accepted (invalid UTF-8, packet id 0, malformed flags and properties) close the
/// connection, with the MQTT 5 reason code, before anything they carry takes effect.
/// </summary>
[Collection(SharedBrokerCollection.Name)]
public sealed class StrictInputTests(SharedBroker shared)
{
    private const byte MalformedPacket = 0x81;
    private const byte ProtocolError = 0x82;

    private readonly BrokerProcess _broker = shared.Broker;

    /// <summary>
    /// Bytes sent after an accepted CONNECT, the MQTT 5 reason code of the DISCONNECT that answers them, and what the
    /// broker's log says about them (reason tag and detail).
    /// </summary>
    public static TheoryData<byte, string, byte, string> MalformedAfterConnect => new()
    {
        { 4, "c100", MalformedPacket, "(malformed_packet): reserved fixed-header flags" },                     // PINGREQ with flags
        { 5, "c100", MalformedPacket, "(malformed_packet): reserved fixed-header flags" },
        { 4, "42020001", MalformedPacket, "(malformed_packet): reserved fixed-header flags" },                 // PUBACK with flags
        { 5, "42020001", MalformedPacket, "(malformed_packet): reserved fixed-header flags" },
        { 4, "60020001", MalformedPacket, "(malformed_packet): reserved fixed-header flags" },                 // PUBREL without its 0010 flags
        { 5, "60020001", MalformedPacket, "(malformed_packet): reserved fixed-header flags" },
        { 4, "8006000100016101", MalformedPacket, "(malformed_packet): SUBSCRIBE fixed-header flags are not 0010" },
        { 5, "800700010000016101", MalformedPacket, "(malformed_packet): SUBSCRIBE fixed-header flags are not 0010" },
        { 4, "380400016178", MalformedPacket, "(malformed_packet): DUP set on a QoS 0 PUBLISH" },
        { 5, "38050001610078", MalformedPacket, "(malformed_packet): DUP set on a QoS 0 PUBLISH" },
        { 4, "a0050001000161", MalformedPacket, "(malformed_packet): UNSUBSCRIBE fixed-header flags are not 0010" },
        { 5, "a006000100000161", MalformedPacket, "(malformed_packet): UNSUBSCRIBE fixed-header flags are not 0010" },
        { 5, "8207000300000161c1", MalformedPacket, "(malformed_packet): reserved subscription option bits set" },
        { 4, "82060003000161c1", MalformedPacket, "(malformed_packet): reserved subscription option bits set" },
        { 5, "820700030000016131", ProtocolError, "(protocol_error): Retain Handling 3" },
        { 4, "a2020004", ProtocolError, "(protocol_error): UNSUBSCRIBE without topic filters" },
        { 5, "a203000400", ProtocolError, "(protocol_error): UNSUBSCRIBE without topic filters" },
        { 5, "3007000161020b0178", ProtocolError, "(protocol_error): PUBLISH from a client carries a Subscription Identifier" },
        { 4, "8206000000016101", ProtocolError, "(packet_id_zero): packet identifier 0" },           // SUBSCRIBE with packet id 0
        { 5, "820700000000016101", ProtocolError, "(packet_id_zero): packet identifier 0" },
        { 4, "a205000000016" + "1", ProtocolError, "(packet_id_zero): packet identifier 0" },        // UNSUBSCRIBE with packet id 0
        { 5, "a20600000000016" + "1", ProtocolError, "(packet_id_zero): packet identifier 0" },
        { 4, "50020000", ProtocolError, "(packet_id_zero): packet identifier 0" },                   // PUBREC with packet id 0
        { 5, "50020000", ProtocolError, "(packet_id_zero): packet identifier 0" },
        { 4, "62020000", ProtocolError, "(packet_id_zero): packet identifier 0" },                   // PUBREL with packet id 0
        { 5, "62020000", ProtocolError, "(packet_id_zero): packet identifier 0" },
    };

    /// <summary>
    /// A CONNECT, the protocol level it names (MQTT 5: answered with a CONNACK with the reason code; MQTT 3.1.1: closed
    /// without CONNACK), and what the broker's log says about it.
    /// </summary>
    public static TheoryData<string, byte, byte, string> MalformedConnects => new()
    {
        { "101a00044d515454041e003c0005667a742d340004667a2f77000178", 4, 0, "(malformed_packet): will QoS 3" },
        { "101c00044d515454051e003c000005667a742d34000004667a2f77000178", 5, MalformedPacket, "(malformed_packet): will QoS 3" },
        { "101200044d5154540503003c000005667a742d35", 5, MalformedPacket, "(malformed_packet): CONNECT reserved flag is set" },
        { "101100044d5154540403003c0005667a742d35", 4, 0, "(malformed_packet): CONNECT reserved flag is set" },
        { "101300044d5154540502003c032100000003667a74", 5, ProtocolError, "(protocol_error): Receive Maximum 0" },
        { "101500044d5154540502003c0527000000000003667a74", 5, ProtocolError, "(protocol_error): Maximum Packet Size 0" },
        { "101200044d5154540502003c0217020003667a74", 5, ProtocolError, "(protocol_error): byte property other than 0 or 1" },
        { "101a00044d5154540502003c0a110000000111000000020003667a74", 5, ProtocolError, "(protocol_error): property included more than once" },
    };

    [Theory]
    [MemberData(nameof(MalformedAfterConnect))]
    public async Task Malformed_packets_after_connect_close_the_connection(byte level, string hex, byte reasonCode, string log)
    {
        await using var client = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, $"strict-{level}-{Guid.NewGuid():N}");
        await client.SendAsync(Convert.FromHexString(hex));
        await client.AssertClosedByServerAsync(level, reasonCode);
        await AssertLoggedAsync(client, "bad input " + log);
    }

    [Theory]
    [MemberData(nameof(MalformedConnects))]
    public async Task Malformed_connects_are_refused(string hex, byte level, byte reasonCode, string log)
    {
        await using var client = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await client.SendAsync(Convert.FromHexString(hex));
        var packets = await client.ReadUntilClosedAsync();
        if (level == 5)
        {
            var (header, body) = Assert.Single(packets);
            Assert.Equal(0x20, header);
            Assert.Equal(reasonCode, body[1]);
        }
        else
        {
            Assert.Empty(packets);
        }

        await AssertLoggedAsync(client, (level == 5 ? "refused " : "bad input ") + log);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Client_ids_that_are_not_utf8_are_refused_and_take_over_no_session(byte level)
    {
        var before = await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"invalid_utf8\"");

        // The session the invalid ids would have become with U+FFFD in place of the bad byte.
        var prefix = $"dev-{level}-{Guid.NewGuid():N}";
        await using var first = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, prefix + "\uFFFD");

        foreach (var bad in new byte[] { 0xFF, 0xFE })
        {
            await using var second = await RawMqttClient.ConnectAsync(_broker.MqttPort);
            await second.SendAsync(ConnectWithClientId(level, [.. Encoding.UTF8.GetBytes(prefix), bad]));
            var packets = await second.ReadUntilClosedAsync();
            if (level == 5)
            {
                var (header, body) = Assert.Single(packets);
                Assert.Equal(0x20, header);
                Assert.Equal(MalformedPacket, body[1]);
            }
            else
            {
                Assert.Empty(packets);
            }
        }

        // The first client was not taken over: it is still connected and answered.
        await first.SendAsync([0xC0, 0x00]);
        Assert.Equal(0xD0, (await first.ReadPacketAsync())!.Value.Header);
        Assert.True(await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"invalid_utf8\"") >= before + 2);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Publish_to_topic_bytes_that_are_not_utf8_is_not_delivered(byte level)
    {
        var prefix = $"fz-{level}-{Guid.NewGuid():N}";
        await using var subscriber = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, "strict-sub-" + Guid.NewGuid().ToString("N"));
        await subscriber.SendAsync(RawMqttClient.Subscribe(1, level == 5, ("#", 0)));
        Assert.Equal(0x90, (await subscriber.ReadPacketAsync())!.Value.Header);

        await using (var publisher = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, "strict-pub-" + Guid.NewGuid().ToString("N")))
        {
            // The fuzz run's topic bytes "fz/" C3 28: C3 starts a two-byte sequence that 28 does not continue.
            byte[] topic = [.. Encoding.UTF8.GetBytes(prefix + "/"), 0xC3, 0x28];
            byte[] body = [(byte)(topic.Length >> 8), (byte)topic.Length, .. topic, .. level == 5 ? new byte[] { 0 } : [], (byte)'x'];
            await publisher.SendAsync(RawMqttClient.Packet(0x30, body));
            await publisher.AssertClosedByServerAsync(level, MalformedPacket);
        }

        await AssertOnlyMarkerArrivesAsync(subscriber, prefix, level);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Publish_with_packet_id_0_is_not_delivered(byte level)
    {
        var before = await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"packet_id_zero\"");
        var prefix = $"pid0-{level}-{Guid.NewGuid():N}";
        await using var subscriber = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, "strict-sub-" + Guid.NewGuid().ToString("N"));
        await subscriber.SendAsync(RawMqttClient.Subscribe(1, level == 5, (prefix + "/#", 0)));
        Assert.Equal(0x90, (await subscriber.ReadPacketAsync())!.Value.Header);

        foreach (var qos in new byte[] { 1, 2 })
        {
            await using var publisher = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, "strict-pub-" + Guid.NewGuid().ToString("N"));
            await publisher.SendAsync(RawMqttClient.Publish(prefix + "/a", [(byte)'x'], qos, packetId: 0, v5: level == 5));
            await publisher.AssertClosedByServerAsync(level, ProtocolError);
        }

        await AssertOnlyMarkerArrivesAsync(subscriber, prefix, level);
        Assert.True(await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"packet_id_zero\"") >= before + 2);
    }

    /// <summary>
    /// Publishes a marker under <paramref name="prefix"/> from another client and reads the subscriber up to it: no
    /// other message under the prefix came first, so none of the refused packets was routed.
    /// </summary>
    private async Task AssertOnlyMarkerArrivesAsync(RawMqttClient subscriber, string prefix, byte level)
    {
        var marker = prefix + "/marker";
        await using (var other = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "strict-marker-" + Guid.NewGuid().ToString("N")))
        {
            await other.SendAsync(RawMqttClient.Publish(marker, [(byte)'m'], qos: 1, packetId: 1));
            Assert.Equal(0x40, (await other.ReadPacketAsync())!.Value.Header);
        }

        while (true)
        {
            var (header, body) = await subscriber.ReadPacketAsync() ?? throw new InvalidOperationException("subscriber closed before the marker");
            if (header >> 4 != 3)
            {
                continue;
            }

            var topic = Encoding.UTF8.GetString(body, 2, (body[0] << 8) | body[1]);
            if (topic == marker)
            {
                return;
            }

            Assert.False(topic.StartsWith(prefix, StringComparison.Ordinal), $"'{topic}' (level {level}) was delivered before the marker");
        }
    }

    /// <summary>The broker logged the refusal once, naming the connection by the client's port.</summary>
    private Task AssertLoggedAsync(RawMqttClient client, string text)
    {
        var port = $":{client.LocalPort}";
        return _broker.WaitForOutputAsync(l => l.Contains(port, StringComparison.Ordinal) && l.Contains(text, StringComparison.Ordinal));
    }

    private static byte[] ConnectWithClientId(byte level, byte[] clientId)
    {
        byte[] body = [0, 4, .. "MQTT"u8, level, 0x02, 0, 60, .. level == 5 ? new byte[] { 0 } : [], (byte)(clientId.Length >> 8), (byte)clientId.Length, .. clientId];
        return RawMqttClient.Packet(0x10, body);
    }
}
