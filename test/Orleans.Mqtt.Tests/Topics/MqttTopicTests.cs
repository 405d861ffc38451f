using System.Text;
using Orleans.Mqtt.Topics;
using Xunit;

namespace Orleans.Mqtt.Tests.Topics;

public sealed class MqttTopicTests
{
    [Theory]
    [InlineData("a", true)]
    [InlineData("a/b/c", true)]
    [InlineData("/", true)]
    [InlineData("/a", true)]
    [InlineData("a/", true)]
    [InlineData("a//b", true)]
    [InlineData(" ", true)]
    [InlineData("$SYS/x", true)]
    [InlineData("sport/tennis/player1", true)]
    [InlineData("caf\u00e9/\U0001F600", true)]
    [InlineData("", false)]
    [InlineData("#", false)]
    [InlineData("+", false)]
    [InlineData("a/+/c", false)]
    [InlineData("a/#", false)]
    [InlineData("a+", false)]
    [InlineData("sport/tennis#", false)]
    [InlineData("a\u0000", false)]
    public void IsValidTopicName(string topic, bool expected)
    {
        Assert.Equal(expected, MqttTopic.IsValidTopicName(topic));
    }

    [Theory]
    [InlineData("#", true)]
    [InlineData("+", true)]
    [InlineData("/", true)]
    [InlineData("a", true)]
    [InlineData("a/+/c", true)]
    [InlineData("a/#", true)]
    [InlineData("+/+", true)]
    [InlineData("/+", true)]
    [InlineData("+/#", true)]
    [InlineData("$SYS/x", true)]
    [InlineData("$SYS/#", true)]
    [InlineData("sport/tennis/player1/#", true)]
    [InlineData("a//+//#", true)]
    [InlineData("", false)]
    [InlineData("a/#/b", false)]
    [InlineData("#/a", false)]
    [InlineData("a+", false)]
    [InlineData("+a", false)]
    [InlineData("a/+b/c", false)]
    [InlineData("a/b#", false)]
    [InlineData("sport/tennis#", false)]
    [InlineData("##", false)]
    [InlineData("++", false)]
    [InlineData("a\u0000", false)]
    public void IsValidTopicFilter(string filter, bool expected)
    {
        Assert.Equal(expected, MqttTopic.IsValidTopicFilter(filter));
    }

    [Fact]
    public void LoneSurrogatesAreInvalid()
    {
        // Built at run time: attribute arguments cannot carry lone surrogates through metadata.
        var high = new string('\ud800', 1);
        var low = new string('\udc00', 1);
        Assert.False(MqttTopic.IsValidTopicName("a" + high));
        Assert.False(MqttTopic.IsValidTopicName(low + "a"));
        Assert.False(MqttTopic.IsValidTopicName(low + high));
        Assert.True(MqttTopic.IsValidTopicName(high + low));
        Assert.False(MqttTopic.IsValidTopicFilter("a/" + high));
        Assert.False(MqttTopic.IsValidTopicFilter(low + "/#"));
    }

    [Fact]
    public void ShardOfHashesLoneSurrogatesLikeUtf8Encoding()
    {
        var topic = "lone" + new string('\ud800', 1) + "surrogate" + new string('\udc00', 1);
        Assert.Equal(MqttTopic.Fnv1a32(Encoding.UTF8.GetBytes(topic)), MqttTopic.Fnv1a32(topic));
    }

    [Fact]
    public void Utf8LengthLimitCountsBytesNotChars()
    {
        Assert.True(MqttTopic.IsValidTopicName(new string('a', 65535)));
        Assert.False(MqttTopic.IsValidTopicName(new string('a', 65536)));

        // 21845 three-byte chars are 65535 bytes; one more is over the limit.
        Assert.True(MqttTopic.IsValidTopicName(new string('\u20ac', 21845)));
        Assert.False(MqttTopic.IsValidTopicName(new string('\u20ac', 21846)));
        Assert.False(MqttTopic.IsValidTopicFilter(new string('\u20ac', 21845) + "/#"));
    }

    [Theory]
    // Examples from MQTT 3.1.1 section 4.7.1.2.
    [InlineData("sport/tennis/player1/#", "sport/tennis/player1", true)]
    [InlineData("sport/tennis/player1/#", "sport/tennis/player1/ranking", true)]
    [InlineData("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true)]
    [InlineData("sport/tennis/player1/#", "sport/tennis/player2", false)]
    [InlineData("sport/#", "sport", true)]
    [InlineData("sport/#", "sports", false)]
    [InlineData("#", "a", true)]
    [InlineData("#", "a/b/c", true)]
    [InlineData("#", "/", true)]
    [InlineData("a/#", "a", true)]
    [InlineData("a/#", "a/", true)]
    [InlineData("a/#", "ab", false)]
    [InlineData("a/#", "b/a", false)]
    // Section 4.7.1.3.
    [InlineData("sport/tennis/+", "sport/tennis/player1", true)]
    [InlineData("sport/tennis/+", "sport/tennis/player2", true)]
    [InlineData("sport/tennis/+", "sport/tennis/player1/ranking", false)]
    [InlineData("sport/+", "sport", false)]
    [InlineData("sport/+", "sport/", true)]
    [InlineData("+/+", "/finance", true)]
    [InlineData("/+", "/finance", true)]
    [InlineData("+", "/finance", false)]
    [InlineData("+", "", true)]
    [InlineData("+", "a", true)]
    [InlineData("+/+", "a", false)]
    [InlineData("a/+/c", "a//c", true)]
    [InlineData("a/+/c", "a/b/c/d", false)]
    [InlineData("+/#", "a", true)]
    [InlineData("/", "/", true)]
    [InlineData("a/b", "a/b", true)]
    [InlineData("a/b", "a/b/", false)]
    [InlineData("a/b", "A/b", false)]
    // Section 4.7.2: topics starting with '$'.
    [InlineData("#", "$SYS/x", false)]
    [InlineData("+/monitor/Clients", "$SYS/monitor/Clients", false)]
    [InlineData("+", "$x", false)]
    [InlineData("+/#", "$SYS/x", false)]
    [InlineData("$SYS/#", "$SYS/monitor/Clients", true)]
    [InlineData("$SYS/#", "$SYS", true)]
    [InlineData("$SYS/monitor/+", "$SYS/monitor/Clients", true)]
    [InlineData("$SYS/x", "$SYS/x", true)]
    [InlineData("a/+", "a/$x", true)]
    [InlineData("a/#", "a/$x", true)]
    public void Matches(string filter, string topic, bool expected)
    {
        Assert.Equal(expected, MqttTopic.Matches(filter, topic));

        var index = new TopicIndex<int>();
        index.Add(filter, 1);
        var results = new List<int>();
        index.Match(topic, results);
        Assert.Equal(expected ? new[] { 1 } : Array.Empty<int>(), results);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a")]
    [InlineData("foobar")]
    [InlineData("sensors/building-7/floor-3/room-12/temperature")]
    [InlineData("caf\u00e9/\u20ac/\U0001F600")]
    public void ShardOfCharsEqualsShardOfUtf8Bytes(string topic)
    {
        var bytes = Encoding.UTF8.GetBytes(topic);
        Assert.Equal(MqttTopic.Fnv1a32(bytes), MqttTopic.Fnv1a32(topic));
        foreach (var shardCount in new[] { 1, 2, 7, 64, 1000, int.MaxValue })
        {
            Assert.Equal(MqttTopic.ShardOf(bytes, shardCount), MqttTopic.ShardOf(topic, shardCount));
        }
    }

    [Fact]
    public void ShardOfIsStableAndInRange()
    {
        for (var shardCount = 1; shardCount <= 300; shardCount++)
        {
            for (var i = 0; i < 50; i++)
            {
                var topic = $"devices/{i}/telemetry";
                var shard = MqttTopic.ShardOf(topic, shardCount);
                Assert.InRange(shard, 0, shardCount - 1);
                Assert.Equal(shard, MqttTopic.ShardOf(new string(topic.AsSpan()), shardCount));
            }
        }
    }

    [Fact]
    public void ShardOfIsPinned()
    {
        // Published FNV-1a 32-bit test vectors: the hash must never change, or shards move between releases.
        Assert.Equal(0x811C9DC5u, MqttTopic.Fnv1a32(""));
        Assert.Equal(0xE40C292Cu, MqttTopic.Fnv1a32("a"));
        Assert.Equal(0xBF9CF968u, MqttTopic.Fnv1a32("foobar"));

        // With 16 shards the shard is the top four bits of the hash.
        Assert.Equal(0xE, MqttTopic.ShardOf("a", 16));
        Assert.Equal(0xB, MqttTopic.ShardOf("foobar", 16));
        Assert.Equal(799, MqttTopic.ShardOf("devices/42/telemetry", 1024));
        Assert.Equal(912, MqttTopic.ShardOf("a"u8, 1024));
    }

    [Fact]
    public void ShardOfRejectsNonPositiveShardCount()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => MqttTopic.ShardOf("a", 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => MqttTopic.ShardOf("a", -1));
    }
}
