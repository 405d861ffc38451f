using Xunit;
using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// The cluster's figures: the gateways' heartbeats and the silos' shares added up (<see cref="ClusterStatsAggregator"/>),
/// each session counted by exactly one active silo (<see cref="SessionShare"/>, <see cref="RouteTable.CountOwned"/>),
/// and the <c>$SYS</c> topics made of them (<see cref="SysTopics"/>).
/// </summary>
public sealed class ClusterStatsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private static readonly DateTime Start = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void Totals_are_the_live_gateways_counters_and_the_silos_shares_added_up()
    {
        var clock = new FakeTimeProvider(Start);
        var stats = new ClusterStatsAggregator(clock, Timeout);
        stats.Report(Report("a", 1, connected: 3, received: 100, sent: 40));
        clock.Advance(TimeSpan.FromSeconds(5));
        stats.Report(Report("b", 2, connected: 2, received: 7, sent: 9));

        var s = stats.Snapshot([Silo("s1", 10, 20, 5), Silo("s2", 4, 1, 5), Silo("s3", 0, 0, 5)]);

        Assert.Equal(2, s.Totals.Gateways);
        Assert.Equal(3, s.Totals.Silos);
        Assert.Equal(5, s.Totals.ConnectedClients);
        Assert.Equal(14, s.Totals.Sessions);
        Assert.Equal(21, s.Totals.Subscriptions);
        Assert.Equal(5, s.Totals.Retained);
        Assert.Equal(107, s.Totals.Traffic.MessagesReceived);
        Assert.Equal(49, s.Totals.Traffic.MessagesSent);
        Assert.Equal(["a", "b"], s.Gateways.Select(g => g.GatewayId));
        Assert.Equal(3, s.Gateways[0].ConnectedClients);
        Assert.Equal(Start, s.UpSinceUtc);
    }

    [Fact]
    public void A_gateway_that_dies_takes_its_connections_but_not_its_counts()
    {
        var clock = new FakeTimeProvider(Start);
        var stats = new ClusterStatsAggregator(clock, Timeout);
        stats.Report(Report("a", 1, connected: 3, received: 100, sent: 40));
        stats.Report(Report("b", 2, connected: 2, received: 7, sent: 9));

        // b falls silent; a goes on.
        clock.Advance(TimeSpan.FromSeconds(6));
        stats.Report(Report("a", 1, connected: 3, received: 110, sent: 41));
        clock.Advance(TimeSpan.FromSeconds(6));
        var s = stats.Snapshot([]);

        Assert.Equal(["a"], s.Gateways.Select(g => g.GatewayId));
        Assert.Equal(3, s.Totals.ConnectedClients);
        Assert.Equal(117, s.Totals.Traffic.MessagesReceived);
        Assert.Equal(50, s.Totals.Traffic.MessagesSent);
        Assert.Equal(7, s.DepartedTraffic.MessagesReceived);

        // a leaves cleanly: nothing counted is lost.
        stats.Depart("a");
        s = stats.Snapshot([]);
        Assert.Equal(0, s.Totals.ConnectedClients);
        Assert.Equal(117, s.Totals.Traffic.MessagesReceived);
        Assert.Null(s.UpSinceUtc);
    }

    [Fact]
    public void A_gateway_declared_dead_that_reports_again_adds_only_what_it_counted_since()
    {
        var clock = new FakeTimeProvider(Start);
        var stats = new ClusterStatsAggregator(clock, Timeout);
        stats.Report(Report("a", 1, connected: 3, received: 100, sent: 40));
        stats.Depart("a");
        Assert.Equal(100, stats.Snapshot([]).Totals.Traffic.MessagesReceived);

        stats.Report(Report("a", 1, connected: 1, received: 104, sent: 40));
        var s = stats.Snapshot([]);

        Assert.Equal(104, s.Totals.Traffic.MessagesReceived);
        Assert.Equal(1, s.Totals.ConnectedClients);
    }

    [Fact]
    public void A_gateway_restarted_under_its_id_keeps_the_old_runs_counts_and_adds_the_new_runs()
    {
        var clock = new FakeTimeProvider(Start);
        var stats = new ClusterStatsAggregator(clock, Timeout);
        stats.Report(Report("a", 1, connected: 3, received: 100, sent: 40));
        clock.Advance(TimeSpan.FromSeconds(1));
        stats.Report(Report("a", 2, connected: 1, received: 5, sent: 2));

        var s = stats.Snapshot([]);

        Assert.Equal(105, s.Totals.Traffic.MessagesReceived);
        Assert.Equal(42, s.Totals.Traffic.MessagesSent);
        Assert.Equal(1, s.Totals.ConnectedClients);
        Assert.Single(s.Gateways);
    }

    [Fact]
    public void Retained_is_one_ready_replicas_count_not_the_sum_of_the_replicas()
    {
        var stats = new ClusterStatsAggregator(new FakeTimeProvider(Start), Timeout);

        var s = stats.Snapshot([Silo("s1", 0, 0, 12), Silo("s2", 0, 0, 12), Silo("s3", 0, 0, 3, ready: false)]);

        Assert.Equal(12, s.Totals.Retained);
    }

    [Fact]
    public void Every_session_is_counted_by_exactly_one_active_silo_also_after_a_silo_is_lost()
    {
        var table = new RouteTable();
        string?[] homes = ["s1", "s2", "s3", null];
        var random = new Random(7);
        for (var i = 0; i < 500; i++)
        {
            var subscriptions = Enumerable.Range(0, random.Next(0, 4)).Select(n => new Subscription($"t/{i}/{n}", 1)).ToArray();
            var home = homes[random.Next(homes.Length)];
            table.Apply(new ClientRoutes($"c{i}", 1, subscriptions, home is not null, new GatewayPresence(null!, "g", i, 0), Home: home));
        }

        AssertSharesAddUp(table, ["s1", "s2", "s3"]);

        // s2 is gone: its sessions have no living home until they are activated elsewhere, and the others count them.
        AssertSharesAddUp(table, ["s1", "s3"]);
        var (s1Before, _) = table.CountOwned("s1", ["s1", "s2", "s3"]);
        var (s1After, _) = table.CountOwned("s1", ["s1", "s3"]);
        Assert.True(s1After > s1Before, $"s1 counted {s1Before} sessions with s2 active and {s1After} without");

        // A silo that is no longer active counts nothing: its sessions are the others' now.
        var (gone, _) = table.CountOwned("s2", ["s1", "s3"]);
        Assert.Equal(0, gone);
    }

    [Fact]
    public void Sys_topics_carry_the_totals_and_each_nodes_figures_under_mosquittos_names()
    {
        var stats = new ClusterStats(
            Start.AddSeconds(90),
            Start,
            new ClusterTotals(2, 1, 5, 14, 21, 3, new TrafficCounters(107, 49, 2, 5000, 7000)),
            [
                new GatewayStats("gw-a", Start, Start, 3, new TrafficCounters(100, 40, 2, 4000, 6000)),
                new GatewayStats("bad/id", Start, Start, 2, new TrafficCounters(7, 9, 0, 1000, 1000)),
            ],
            [new SiloStats("silo1", "addr", 14, 21, 3, true)],
            TrafficCounters.Zero);

        var topics = SysTopics.For(stats).ToDictionary(t => t.Topic, t => t.Value);

        Assert.StartsWith("Orleans.Mqtt ", topics["$SYS/broker/version"]);
        Assert.Equal("90 seconds", topics["$SYS/broker/uptime"]);
        Assert.Equal("5", topics["$SYS/broker/clients/connected"]);
        Assert.Equal("14", topics["$SYS/broker/sessions"]);
        Assert.Equal("21", topics["$SYS/broker/subscriptions/count"]);
        Assert.Equal("3", topics["$SYS/broker/retained messages/count"]);
        Assert.Equal("107", topics["$SYS/broker/messages/received"]);
        Assert.Equal("49", topics["$SYS/broker/messages/sent"]);
        Assert.Equal("2", topics["$SYS/broker/messages/dropped"]);
        Assert.Equal("5000", topics["$SYS/broker/bytes/received"]);
        Assert.Equal("7000", topics["$SYS/broker/bytes/sent"]);
        Assert.Equal("3", topics["$SYS/broker/gateways/gw-a/clients/connected"]);
        Assert.Equal("14", topics["$SYS/broker/silos/silo1/sessions"]);

        // An id that is not one topic level gets no topics of its own (it would reach into another's).
        Assert.DoesNotContain(topics.Keys, t => t.Contains("bad", StringComparison.Ordinal));
    }

    private static void AssertSharesAddUp(RouteTable table, string[] active)
    {
        var shares = active.Select(silo => table.CountOwned(silo, active)).ToList();
        Assert.Equal(table.ClientCount, shares.Sum(s => s.Sessions));
        Assert.Equal(table.SubscriptionCount, shares.Sum(s => s.Subscriptions));
        Assert.All(shares, s => Assert.True(s.Sessions > 0));
    }

    private static GatewayReport Report(string id, long incarnation, long connected, long received, long sent) =>
        new(id, incarnation, Start, connected, new TrafficCounters(received, sent, 0, received * 10, sent * 10));

    private static SiloStats Silo(string name, long sessions, long subscriptions, long retained, bool ready = true) =>
        new(name, name + "-address", sessions, subscriptions, retained, ready);
}
