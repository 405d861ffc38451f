using Orleans.Mqtt.Grains;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

public sealed class GatewayPresenceSharingTests
{
    [Fact]
    public void Routes_of_one_gateway_share_its_observer_reference_and_id()
    {
        var table = new RouteTable();
        for (var i = 0; i < 3; i++)
        {
            // As deserialized: each presence with its own, equal, copy of the observer reference and of the id.
            table.Apply(new ClientRoutes($"c{i}", 1, [new Subscription($"t/{i}", 1)], true, new GatewayPresence(new Observer("gw-1"), Copy("gw-1"), 100 + i, 7)));
        }

        var first = table.Get("c0")!.Presence!;
        for (var i = 1; i < 3; i++)
        {
            var presence = table.Get($"c{i}")!.Presence!;
            Assert.Same(first.Gateway, presence.Gateway);
            Assert.Same(first.GatewayId, presence.GatewayId);
            Assert.Equal(100 + i, presence.ConnectionId);
            Assert.Equal(7, presence.LeaseId);
        }

        // A session takes its connection's presence the same way, so the routes it sends here are held as they are.
        var connecting = table.Intern(new GatewayPresence(new Observer("gw-1"), Copy("gw-1"), 200));
        Assert.Same(first.Gateway, connecting.Gateway);
        Assert.Same(first.GatewayId, connecting.GatewayId);
        var routes = new ClientRoutes("c9", 1, [], true, connecting);
        Assert.True(table.Apply(routes, out _, out var held));
        Assert.Same(routes, held);
    }

    [Fact]
    public void A_gateway_restarted_under_the_same_id_is_reached_through_its_new_observer()
    {
        var table = new RouteTable();
        var dead = new Observer("gw-1", process: 1);
        var restarted = new Observer("gw-1", process: 2);
        table.Apply(new ClientRoutes("old", 1, [], true, new GatewayPresence(dead, "gw-1", 1)));
        table.Apply(new ClientRoutes("new", 1, [], true, new GatewayPresence(restarted, "gw-1", 2)));

        Assert.Same(dead, table.Get("old")!.Presence!.Gateway);
        Assert.Same(restarted, table.Get("new")!.Presence!.Gateway);
        Assert.Same(restarted, table.Intern(new GatewayPresence(new Observer("gw-1", process: 2), "gw-1", 3)).Gateway);
    }

    private static string Copy(string s) => new([.. s]);

    // Equal when they name the same gateway process, as two deserialized references to one observer are.
    private sealed class Observer(string gateway, int process = 1) : IGatewayObserver
    {
        public Task Deliver(Delivery[] deliveries) => Task.CompletedTask;

        public Task Disconnect(long connectionId, byte reasonCode) => Task.CompletedTask;

        public override bool Equals(object? obj) => obj is Observer o && o.Gateway == Gateway && o.Process == Process;

        public override int GetHashCode() => HashCode.Combine(Gateway, Process);

        private string Gateway => gateway;

        private int Process => process;
    }
}
