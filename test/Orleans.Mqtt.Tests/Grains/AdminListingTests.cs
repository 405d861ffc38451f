using CsCheck;
using Orleans.Mqtt.Grains;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

public sealed class AdminListingTests
{
    private static readonly GatewayPresence OnA = new(null!, "gw-a", 1);

    private static ClientRoutes Client(string id, string? home, string activeOn, GatewayPresence? presence = null, string? user = null) =>
        new(id, 1, [new Subscription("t/" + id, 1)], home is not null, presence, Home: home, ActiveOn: activeOn, UserName: user);

    [Fact]
    public void A_silo_lists_the_sessions_homed_on_it_and_the_memory_only_ones_active_on_it_so_each_client_is_listed_once()
    {
        var table = new RouteTable();
        table.Apply(Client("c1", home: "s1", activeOn: "s1"));
        table.Apply(Client("c2", home: "s2", activeOn: "s2"));
        table.Apply(Client("c3", home: null, activeOn: "s1", OnA));
        table.Apply(Client("c4", home: "s2", activeOn: "s1"));

        var query = new ClientQuery(10);
        Assert.Equal(["c1", "c3"], table.ListClients("s1", query).Select(c => c.ClientId));
        Assert.Equal(["c2", "c4"], table.ListClients("s2", query).Select(c => c.ClientId));
        Assert.Empty(table.ListClients("s3", query));

        var c3 = table.ListClients("s1", query)[1];
        Assert.True(c3.Connected);
        Assert.Equal("gw-a", c3.GatewayId);
        Assert.False(c3.Persistent);
        Assert.Equal(1, c3.Subscriptions);
    }

    [Fact]
    public void A_session_whose_silo_is_lost_is_listed_once_by_the_first_active_silo_of_its_ranking()
    {
        var table = new RouteTable();
        table.Apply(Client("c1", home: "s1", activeOn: "s1"));
        table.Apply(Client("lost", home: "gone", activeOn: "gone"));
        table.Apply(Client("lost-clean", home: null, activeOn: "gone", OnA));

        string[] active = ["s1", "s2", "s3"];
        var query = new ClientQuery(10);
        var listed = active.SelectMany(silo => table.ListClients(silo, active, query).Select(c => (c.ClientId, c.Silo))).ToList();
        Assert.Equal(["c1", "lost", "lost-clean"], listed.Select(c => c.ClientId).Order(StringComparer.Ordinal));
        Assert.Equal("s1", listed.Single(c => c.ClientId == "c1").Silo);
        Assert.Equal(SessionShare.FirstOf("lost", active), listed.Single(c => c.ClientId == "lost").Silo);
        Assert.Equal(SessionShare.FirstOf("lost-clean", active), listed.Single(c => c.ClientId == "lost-clean").Silo);

        // Without the active silos, as before: only by the silo it names.
        Assert.DoesNotContain(active.SelectMany(silo => table.ListClients(silo, query)), c => c.ClientId.StartsWith("lost", StringComparison.Ordinal));
    }

    [Fact]
    public void Filters_and_the_cursor_narrow_the_page()
    {
        var table = new RouteTable();
        table.Apply(Client("dev-1", "s", "s", OnA, user: "alice"));
        table.Apply(Client("dev-2", "s", "s", user: "bob"));
        table.Apply(Client("dev-3", "s", "s", OnA, user: "alice"));
        table.Apply(Client("other", "s", "s", OnA, user: "alice"));

        Assert.Equal(["dev-1", "dev-2", "dev-3"], Ids(table, new ClientQuery(10, ClientIdPrefix: "dev-")));
        Assert.Equal(["dev-1", "dev-3", "other"], Ids(table, new ClientQuery(10, UserName: "alice")));
        Assert.Equal(["dev-1", "dev-3", "other"], Ids(table, new ClientQuery(10, GatewayId: "gw-a")));
        Assert.Equal(["dev-3"], Ids(table, new ClientQuery(10, After: "dev-1", ClientIdPrefix: "dev-", GatewayId: "gw-a")));
        Assert.Equal(["dev-1", "dev-2"], Ids(table, new ClientQuery(2)));
        Assert.Equal(["dev-3", "other"], Ids(table, new ClientQuery(2, After: "dev-2")));
        Assert.Empty(Ids(table, new ClientQuery(0)));
    }

    [Fact]
    public void Smallest_keys_equal_the_first_of_the_sorted_keys()
    {
        Gen.Select(Gen.String[Gen.Char['a', 'e'], 0, 4].Array[0, 60], Gen.Int[0, 70]).Sample((keys, limit) =>
        {
            var smallest = new SmallestKeys<string>(limit);
            foreach (var k in keys.Distinct())
            {
                smallest.Offer(k, k);
            }

            var expected = keys.Distinct().Order(StringComparer.Ordinal).Take(limit).ToArray();
            return expected.SequenceEqual(smallest.ToSortedArray());
        });
    }

    [Fact]
    public void Retained_messages_are_listed_by_filter_in_topic_order_after_the_cursor_without_deleted_ones()
    {
        var table = new RouteTable();
        foreach (var (topic, version) in new[] { ("a/2", 1L), ("a/1", 2L), ("b/1", 3L), ("a/3", 4L) })
        {
            table.ApplyRetained(new RetainedUpdate(topic, version, new MqttMessage { Topic = topic, Payload = new byte[] { 1 }, Retain = true }));
        }

        table.ApplyRetained(new RetainedUpdate("a/3", 5, null));

        Assert.Equal(["a/1", "a/2"], table.ListRetained("a/#", null, 10).Select(r => r.Topic));
        Assert.Equal(["a/2"], table.ListRetained("a/+", "a/1", 10).Select(r => r.Topic));
        Assert.Equal(["a/1", "a/2", "b/1"], table.ListRetained("#", null, 10).Select(r => r.Topic));
        Assert.Equal(["a/1"], table.ListRetained("#", null, 1).Select(r => r.Topic));
        Assert.Equal(["b/1"], table.ListRetained("b/1", null, 1).Select(r => r.Topic));
    }

    private static string[] Ids(RouteTable table, ClientQuery query) => [.. table.ListClients("s", query).Select(c => c.ClientId)];
}
