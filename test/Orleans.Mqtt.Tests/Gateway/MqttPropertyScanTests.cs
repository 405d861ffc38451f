using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

public sealed class MqttPropertyScanTests
{
    [Fact]
    public void Finds_a_property_after_properties_of_every_shape()
    {
        byte[] block =
        [
            24,
            0x01, 0x01,                         // Payload Format Indicator (byte)
            0x02, 0, 0, 0, 9,                   // Message Expiry Interval (four bytes)
            0x08, 0, 1, (byte)'r',              // Response Topic (string)
            0x26, 0, 1, (byte)'k', 0, 1, (byte)'v', // User Property (string pair)
            0x0B, 0x81, 0x01,                   // Subscription Identifier (variable byte integer, 129)
            0x23, 0, 0,                         // Topic Alias 0
        ];

        Assert.True(MqttPropertyScan.Contains(block, 0, MqttPropertyScan.TopicAlias));
        Assert.False(MqttPropertyScan.Contains(block, 0, MqttPropertyScan.SessionExpiryInterval));
    }

    [Fact]
    public void An_empty_or_truncated_block_has_nothing()
    {
        Assert.False(MqttPropertyScan.Contains([0], 0, MqttPropertyScan.TopicAlias));
        Assert.False(MqttPropertyScan.Contains([], 0, MqttPropertyScan.TopicAlias));
        Assert.False(MqttPropertyScan.Contains([5, 0x01], 0, MqttPropertyScan.TopicAlias));
    }

    [Fact]
    public void Publish_properties_start_after_the_topic_and_the_packet_id()
    {
        byte[] body = [0, 3, (byte)'a', (byte)'/', (byte)'b', 0, 7, 3, 0x23, 0, 0];
        Assert.Equal(7, MqttPropertyScan.PublishPropertiesOffset(body, qos: 1));
        Assert.Equal(5, MqttPropertyScan.PublishPropertiesOffset(body, qos: 0));
        Assert.True(MqttPropertyScan.Contains(body, 7, MqttPropertyScan.TopicAlias));
    }
}
