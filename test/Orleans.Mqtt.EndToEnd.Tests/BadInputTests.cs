using System.Text;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// Bad input gets the spec's reaction (a failure code or a closed connection), a log line and a metric, and the
/// broker keeps serving every other client.
/// </summary>
[Collection(SharedBrokerCollection.Name)]
public sealed class BadInputTests(SharedBroker shared)
{
    private readonly BrokerProcess _broker = shared.Broker;

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Publish_to_a_topic_with_wildcards_closes_the_connection(byte level)
    {
        var before = await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"invalid_topic\"");
        var clientId = $"bad-topic-{level}-{Guid.NewGuid():N}";
        await using var client = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, clientId);
        await client.SendAsync(RawMqttClient.Publish("a/+/b", [1, 2, 3], qos: 1, packetId: 1, v5: level == 5));

        await client.AssertClosedByServerAsync(level, 0x90);

        await _broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains("bad input (invalid_topic)", StringComparison.Ordinal));
        Assert.True(await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"invalid_topic\"") > before);
        await AssertBrokerServesOthersAsync();
    }

    [Theory]
    [InlineData(4, 0x80)]
    [InlineData(5, 0x8F)]
    public async Task Subscribe_with_invalid_filters_gets_failure_codes_for_those_filters_only(byte level, byte failure)
    {
        var before = await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"invalid_filter\"");
        var clientId = $"bad-filter-{level}-{Guid.NewGuid():N}";
        await using var client = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, clientId);
        await client.SendAsync(RawMqttClient.Subscribe(9, level == 5, ("a/#/b", 1), ("a+", 1), ("ok/#", 1)));

        var (header, body) = (await client.ReadPacketAsync())!.Value;
        Assert.Equal(0x90, header);
        var codes = level == 5 ? body[3..] : body[2..];
        Assert.Equal([failure, failure, (byte)0x01], codes);

        await _broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains("invalid topic filter 'a/#/b'", StringComparison.Ordinal));
        Assert.True(await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"invalid_filter\"") >= before + 2);

        // The connection stays usable: the valid filter works.
        await client.SendAsync(RawMqttClient.Publish("ok/x", Encoding.UTF8.GetBytes("still here"), v5: level == 5));
        var (pubHeader, _) = (await client.ReadPacketAsync())!.Value;
        Assert.Equal(0x30, pubHeader & 0xF0);
        await AssertBrokerServesOthersAsync();
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Malformed_remaining_length_closes_the_connection(byte level)
    {
        var before = await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"malformed_packet\"");
        await using var client = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, $"malformed-{level}-{Guid.NewGuid():N}");

        // A remaining length of five bytes is malformed [MQTT-2.2.3].
        await client.SendAsync([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
        await client.AssertClosedByServerAsync(level, 0x81);

        await _broker.WaitForOutputAsync(l => l.Contains("bad input (malformed_packet)", StringComparison.Ordinal));
        Assert.True(await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"malformed_packet\"") > before);
        await AssertBrokerServesOthersAsync();
    }

    [Fact]
    public async Task Garbage_instead_of_connect_closes_the_connection()
    {
        await using var client = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await client.SendAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.Empty(await client.ReadUntilClosedAsync());
        await _broker.WaitForOutputAsync(l => l.Contains("bad input (protocol_error)", StringComparison.Ordinal) && l.Contains("first packet is not CONNECT", StringComparison.Ordinal));
        await AssertBrokerServesOthersAsync();
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Packet_over_max_packet_size_closes_the_connection(byte level)
    {
        var before = await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"packet_too_large\"");
        await using var client = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, level, $"big-{level}-{Guid.NewGuid():N}");

        // 1 MiB is the default Mqtt:MaxPacketSize; the server refuses as soon as it reads the fixed header.
        var packet = RawMqttClient.Publish("big/topic", new byte[1024 * 1024 + 10], v5: level == 5);
        try
        {
            await client.SendAsync(packet);
        }
        catch (IOException)
        {
            // The server may close while the rest is still being sent.
        }

        await client.AssertClosedByServerAsync(level, 0x95);

        await _broker.WaitForOutputAsync(l => l.Contains("bad input (packet_too_large)", StringComparison.Ordinal));
        Assert.True(await _broker.GetCounterAsync("mqtt_packets_rejected_total", "reason=\"packet_too_large\"") > before);
        await AssertBrokerServesOthersAsync();
    }

    [Fact]
    public async Task Empty_client_id_without_clean_session_is_rejected_in_3_1_1()
    {
        await using var client = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await client.SendAsync(RawMqttClient.Connect(4, string.Empty, cleanSession: false));
        var (header, body) = (await client.ReadPacketAsync())!.Value;
        Assert.Equal(0x20, header);
        Assert.Equal(0x02, body[1]);
        Assert.Empty(await client.ReadUntilClosedAsync());
    }

    [Fact]
    public async Task Unsupported_protocol_level_gets_return_code_1()
    {
        await using var client = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await client.SendAsync(RawMqttClient.Connect(7, "level-7"));
        var (header, body) = (await client.ReadPacketAsync())!.Value;
        Assert.Equal(0x20, header);
        Assert.Equal(0x01, body[1]);
        Assert.Empty(await client.ReadUntilClosedAsync());
    }

    /// <summary>A publish and a delivery between two fresh clients still work.</summary>
    private async Task AssertBrokerServesOthersAsync()
    {
        var topic = $"control/{Guid.NewGuid():N}";
        await using var sub = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "ctl-sub-" + Guid.NewGuid().ToString("N"));
        await sub.SendAsync(RawMqttClient.Subscribe(1, false, (topic, 1)));
        Assert.Equal(0x90, (await sub.ReadPacketAsync())!.Value.Header);
        await using var pub = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "ctl-pub-" + Guid.NewGuid().ToString("N"));
        await pub.SendAsync(RawMqttClient.Publish(topic, Encoding.UTF8.GetBytes("control"), qos: 1, packetId: 1));
        Assert.Equal(0x40, (await pub.ReadPacketAsync())!.Value.Header);
        var (header, body) = (await sub.ReadPacketAsync())!.Value;
        Assert.Equal(0x30, header & 0xF0);
        Assert.EndsWith("control", Encoding.UTF8.GetString(body), StringComparison.Ordinal);
    }
}
