using CsCheck;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Topics;
using Xunit;

namespace Orleans.Mqtt.Tests.Security;

public sealed class FilterRelationTests
{
    private static readonly string[] Alphabet = ["a", "b", "c", "", "$x"];

    // Every topic of 1 to 5 levels over the alphabet: long enough to tell apart filters of up to 4 levels.
    private static readonly string[] AllTopics = Topics(5).ToArray();

    private static readonly Gen<string> GenFilter = Gen.Select(
        Gen.OneOf("a", "b", "", "$x", "+", "+").Array[1, 3],
        Gen.Int[0, 2],
        (levels, multiLevel) => multiLevel switch
        {
            0 => string.Join('/', levels),
            1 => string.Join('/', levels) + "/#",
            _ => string.Join('/', levels[..^1].Append("#")),
        }).Where(filter => filter.Length > 0 && MqttTopic.IsValidTopicFilter(filter));

    [Fact]
    public void Covers_is_the_subset_of_matched_topics()
    {
        Gen.Select(GenFilter, GenFilter).Sample((outer, inner) =>
        {
            var expected = AllTopics.All(t => !MqttTopic.Matches(inner, t) || MqttTopic.Matches(outer, t));
            Assert.True(expected == FilterRelation.Covers(outer, inner), $"Covers('{outer}', '{inner}') should be {expected}");
        }, iter: 3000);
    }

    [Fact]
    public void Intersects_is_a_topic_matched_by_both()
    {
        Gen.Select(GenFilter, GenFilter).Sample((a, b) =>
        {
            var expected = AllTopics.Any(t => MqttTopic.Matches(a, t) && MqttTopic.Matches(b, t));
            Assert.True(expected == FilterRelation.Intersects(a, b), $"Intersects('{a}', '{b}') should be {expected}");
        }, iter: 3000);
    }

    [Theory]
    [InlineData("#", "$SYS/#", false, false)]
    [InlineData("$SYS/#", "$SYS/broker/uptime", true, true)]
    [InlineData("devices/+/cmd", "devices/d1/cmd", true, true)]
    [InlineData("devices/d1/#", "devices/+/cmd", false, true)]
    [InlineData("devices/d1/#", "devices/d1", true, true)]
    public void Known_cases(string outer, string inner, bool covers, bool intersects)
    {
        Assert.Equal(covers, FilterRelation.Covers(outer, inner));
        Assert.Equal(intersects, FilterRelation.Intersects(outer, inner));
        Assert.Equal(intersects, FilterRelation.Intersects(inner, outer));
    }

    private static IEnumerable<string> Topics(int maxLevels)
    {
        IEnumerable<string> level = Alphabet;
        for (var n = 1; n <= maxLevels; n++)
        {
            foreach (var topic in level)
            {
                if (topic.Length > 0)
                {
                    yield return topic;
                }
            }

            level = level.SelectMany(prefix => Alphabet.Select(l => prefix + "/" + l)).ToList();
        }
    }
}
