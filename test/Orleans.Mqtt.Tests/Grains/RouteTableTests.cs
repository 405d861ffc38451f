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

    [Fact]
    public void A_deletion_leaves_a_tombstone_that_rejects_late_older_changes_until_it_is_purged()
    {
        var table = new RouteTable();
        table.Apply(Routes("c", 5, new Subscription("a/b", 1)));
        Assert.True(table.Apply(new ClientRoutes("c", 6, [], false, null)));
        Assert.Null(table.Get("c"));

        // A late copy of version 5 (a peer that missed the end of the session) must not bring it back.
        Assert.False(table.Apply(Routes("c", 5, new Subscription("a/b", 1))));
        Assert.Null(table.Get("c"));
        Assert.True(table.Apply(Routes("c", 7, new Subscription("a/c", 1))));

        table.ApplyRetained(new RetainedUpdate("r", 3, new MqttMessage { Topic = "r", Payload = new byte[] { 1 } }));
        table.ApplyRetained(new RetainedUpdate("r", 4, null));
        Assert.False(table.ApplyRetained(new RetainedUpdate("r", 3, new MqttMessage { Topic = "r", Payload = new byte[] { 1 } })));
        Assert.Equal(4, table.RetainedVersion("r"));

        Assert.Equal(1, table.PurgeTombstones(DateTime.UtcNow.AddSeconds(1)));
        Assert.True(table.ApplyRetained(new RetainedUpdate("r", 3, new MqttMessage { Topic = "r", Payload = new byte[] { 1 } })));
    }

    [Fact]
    public void Replicas_with_the_same_versions_have_the_same_digest_and_a_difference_names_its_bucket()
    {
        var a = new RouteTable();
        var b = new RouteTable();
        for (var i = 0; i < 500; i++)
        {
            a.Apply(Routes($"c{i}", i + 1, new Subscription($"t/{i}", 1)));
            b.Apply(Routes($"c{499 - i}", 500 - i, new Subscription($"t/{499 - i}", 1)));
        }

        a.ApplyRetained(new RetainedUpdate("r/1", 1, new MqttMessage { Topic = "r/1", Payload = new byte[] { 1 } }));
        b.ApplyRetained(new RetainedUpdate("r/1", 1, new MqttMessage { Topic = "r/1", Payload = new byte[] { 1 } }));
        Assert.Equal(a.Digest(), b.Digest());

        b.Apply(Routes("c42", 1000, new Subscription("t/other", 1)));
        var differing = Enumerable.Range(0, a.Digest().Length).Where(i => a.Digest()[i] != b.Digest()[i]).ToList();
        Assert.Equal([RouteTable.BucketOf("c42")], differing);

        // Copying the differing bucket from b repairs a: deletions travel as empty routes.
        b.Apply(new ClientRoutes("c7", 2000, [], false, null));
        differing = [.. Enumerable.Range(0, a.Digest().Length).Where(i => a.Digest()[i] != b.Digest()[i])];
        var (routes, _) = b.Read(new HashSet<int>(differing));
        foreach (var r in routes)
        {
            a.Apply(r);
        }

        Assert.Equal(b.Digest(), a.Digest());
        Assert.Null(a.Get("c7"));
        Assert.Equal("t/other", Assert.Single(a.Get("c42")!.Subscriptions).Filter);
    }

    [Fact]
    public void The_table_knows_which_gateways_hold_connections_and_which_clients_are_on_one()
    {
        var table = new RouteTable();
        GatewayPresence On(string gateway, long connection) => new(null!, gateway, connection);
        table.Apply(new ClientRoutes("a", 1, [], false, On("g1", 1)));
        table.Apply(new ClientRoutes("b", 1, [], true, On("g1", 2)));
        table.Apply(new ClientRoutes("c", 1, [], false, On("g2", 3)));

        var gateways = new HashSet<string>();
        table.CollectGateways(gateways);
        Assert.Equal(["g1", "g2"], gateways.Order());

        var onG1 = new List<(string, long)>();
        table.CollectConnectedThrough("g1", onG1);
        Assert.Equal([("a", 1L), ("b", 2L)], onG1.Order());

        // The persistent session goes offline, the clean one ends: g1 holds nothing any more.
        table.Apply(new ClientRoutes("b", 2, [], true, null));
        table.Apply(new ClientRoutes("a", 2, [], false, null));
        gateways.Clear();
        table.CollectGateways(gateways);
        Assert.Equal(["g2"], gateways);
    }
}
