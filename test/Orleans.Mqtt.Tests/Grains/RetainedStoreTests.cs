using CsCheck;
using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Topics;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

public sealed class RetainedStoreTests
{
    // A small alphabet so that random filters and topics collide often; "$x" and "$SYS" exercise the '$' rule.
    private static readonly Gen<string> GenTopic =
        Gen.OneOf("a", "b", "c", "", "$x", "$SYS").Array[1, 5].Select(levels => string.Join('/', levels))
            .Where(topic => topic.Length > 0);

    private static readonly Gen<string> GenFilter = Gen.Select(
        Gen.OneOf("a", "b", "c", "", "$x", "$SYS", "+", "+").Array[1, 5],
        Gen.Int[0, 2],
        (levels, multiLevel) => multiLevel switch
        {
            0 => string.Join('/', levels),
            1 => string.Join('/', levels) + "/#",
            _ => string.Join('/', levels[..^1].Append("#")),
        }).Where(filter => filter.Length > 0);

    [Fact]
    public void A_filter_finds_exactly_the_retained_topics_a_scan_of_every_topic_finds()
    {
        Gen.Select(GenTopic.Array[0, 40], Gen.Int[0, 40], GenFilter.Array[1, 20]).Sample((topics, deletions, filters) =>
        {
            var store = new RetainedStore(TimeProvider.System);
            var held = new HashSet<string>(StringComparer.Ordinal);
            var version = 0L;
            foreach (var topic in topics)
            {
                store.Apply(new RetainedUpdate(topic, ++version, new MqttMessage { Topic = topic, Retain = true }));
                held.Add(topic);
            }

            // Delete some of them again (the index prunes what they leave empty).
            foreach (var topic in topics.Take(deletions))
            {
                store.Apply(new RetainedUpdate(topic, ++version, null));
                held.Remove(topic);
            }

            Assert.Equal(held.Count, store.Count);
            foreach (var filter in filters)
            {
                var found = new List<MqttMessage>();
                store.Match(filter, found);
                var expected = held.Where(topic => MqttTopic.Matches(filter, topic)).Order(StringComparer.Ordinal);
                Assert.Equal(expected, found.Select(m => m.Topic).Order(StringComparer.Ordinal));
            }
        }, iter: 1000);
    }

    [Theory]
    [InlineData("#")]
    [InlineData("+")]
    [InlineData("+/a")]
    [InlineData("+/#")]
    public void A_leading_wildcard_never_matches_a_dollar_topic(string filter)
    {
        var store = new RetainedStore(TimeProvider.System);
        foreach (var topic in new[] { "$SYS", "$SYS/a", "$x/a/b", "s", "s/a" })
        {
            store.Apply(new RetainedUpdate(topic, 1, new MqttMessage { Topic = topic, Retain = true }));
        }

        var found = new List<MqttMessage>();
        store.Match(filter, found);

        Assert.All(found, m => Assert.False(m.Topic.StartsWith('$')));
        Assert.NotEmpty(found);
    }

    [Fact]
    public void A_filter_below_a_dollar_level_matches_the_dollar_topics()
    {
        var store = new RetainedStore(TimeProvider.System);
        store.Apply(new RetainedUpdate("$SYS/a", 1, new MqttMessage { Topic = "$SYS/a", Retain = true }));

        var found = new List<MqttMessage>();
        store.Match("$SYS/#", found);

        Assert.Equal("$SYS/a", Assert.Single(found).Topic);
    }

    [Fact]
    public void An_expired_retained_message_is_no_longer_served_and_a_deletion_is_forgotten_after_the_purge()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var store = new RetainedStore(time);
        var expiresAt = time.GetUtcNow().UtcDateTime.AddSeconds(10);
        store.Apply(new RetainedUpdate("s/a", 1, new MqttMessage { Topic = "s/a", Retain = true, ExpiresAtUtc = expiresAt }));
        store.Apply(new RetainedUpdate("s/b", 1, new MqttMessage { Topic = "s/b", Retain = true }));
        store.Apply(new RetainedUpdate("s/b", 2, null));

        var found = new List<MqttMessage>();
        store.Match("s/+", found);
        Assert.Equal("s/a", Assert.Single(found).Topic);

        time.Advance(TimeSpan.FromSeconds(10));
        found.Clear();
        store.Match("s/+", found);
        store.Match("s/a", found);
        Assert.Empty(found);

        // The deletion of s/b keeps its version until it is purged.
        Assert.Equal(2, store.VersionOf("s/b"));
        Assert.Equal(0, store.PurgeTombstones(time.GetUtcNow().UtcDateTime.AddSeconds(-20)));
        Assert.Equal(1, store.PurgeTombstones(time.GetUtcNow().UtcDateTime.AddSeconds(1)));
        Assert.Equal(0, store.VersionOf("s/b"));
    }
}
