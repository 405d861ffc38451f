using Xunit;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Tests.Grains;

public sealed class RouteTableTests
{
    private static ClientRoutes Routes(string client, long version, params Subscription[] subs) => new(client, version, subs, true, null);

    [Fact]
    public void Older_versions_are_ignored_whatever_the_order_they_arrive_in()
    {
        var table = new RouteTable();
        Assert.True(table.Apply(Routes("c", 2, new Subscription("a/b", 1))));
        Assert.False(table.Apply(Routes("c", 1, new Subscription("x/y", 1))));
        Assert.False(table.Apply(Routes("c", 2, new Subscription("x/y", 1))));

        var matches = new List<SessionMatch>();
        table.Match(new MqttMessage { Topic = "x/y", Qos = 1 }, matches);
        Assert.Empty(matches);
        table.Match(new MqttMessage { Topic = "a/b", Qos = 1 }, matches);
        Assert.Single(matches);
    }

    [Fact]
    public void Overlapping_subscriptions_merge_into_one_match_with_the_highest_qos_and_all_identifiers()
    {
        var table = new RouteTable();
        table.Apply(Routes("c", 1, new Subscription("s/+", 0, SubscriptionId: 7), new Subscription("s/#", 2, SubscriptionId: 9), new Subscription("s/x", 1)));

        var matches = new List<SessionMatch>();
        table.Match(new MqttMessage { Topic = "s/x", Qos = 2 }, matches);

        var match = Assert.Single(matches);
        Assert.Equal(2, match.Qos);
        Assert.Equal([7u, 9u], match.SubscriptionIds!.Order());
    }

    [Fact]
    public void Granted_qos_caps_the_delivered_qos_and_the_publish_qos_caps_the_granted_one()
    {
        var table = new RouteTable();
        table.Apply(Routes("low", 1, new Subscription("t", 0)));
        table.Apply(Routes("high", 1, new Subscription("t", 2)));

        var matches = new List<SessionMatch>();
        table.Match(new MqttMessage { Topic = "t", Qos = 1 }, matches);

        Assert.Equal(0, matches.Single(m => m.Client.ClientId == "low").Qos);
        Assert.Equal(1, matches.Single(m => m.Client.ClientId == "high").Qos);
    }

    [Fact]
    public void Retained_updates_apply_by_version_and_wildcards_match_them()
    {
        var table = new RouteTable();
        table.ApplyRetained(new RetainedUpdate("a/1", 5, new MqttMessage { Topic = "a/1", Payload = new byte[] { 1 } }));
        Assert.False(table.ApplyRetained(new RetainedUpdate("a/1", 4, null)));
        table.ApplyRetained(new RetainedUpdate("$SYS/x", 1, new MqttMessage { Topic = "$SYS/x" }));

        var found = new List<MqttMessage>();
        table.MatchRetained("#", found);
        Assert.Equal("a/1", Assert.Single(found).Topic);

        Assert.True(table.ApplyRetained(new RetainedUpdate("a/1", 6, null)));
        found.Clear();
        table.MatchRetained("a/+", found);
        Assert.Empty(found);
    }
}
