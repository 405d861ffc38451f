using Xunit;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Tests.Grains;

public sealed class ReplicaWriterTests
{
    private static readonly GatewayPresence Connected = new(null!, "gw", 1);

    [Fact]
    public async Task Only_routes_of_sessions_that_are_or_were_persistent_reach_the_durable_replica()
    {
        var store = new RecordingStore();
        var writer = new ReplicaWriter(new RouteTable(), store);

        // A clean session's life: connect, subscribe, disconnect. The durable replica never held it.
        Assert.True(await writer.ApplyAsync(Routes("clean", 1, persistent: false, Connected)));
        Assert.True(await writer.ApplyAsync(Routes("clean", 2, persistent: false, Connected, new Subscription("a/b", 1))));
        Assert.True(await writer.ApplyAsync(Routes("clean", 3, persistent: false, presence: null)));
        Assert.Empty(store.Saves);

        // A persistent session is stored without its presence; when it turns clean, its record is deleted once.
        Assert.True(await writer.ApplyAsync(Routes("kept", 1, persistent: true, Connected, new Subscription("x", 1))));
        Assert.True(await writer.ApplyAsync(Routes("kept", 2, persistent: false, Connected, new Subscription("x", 1))));
        Assert.True(await writer.ApplyAsync(Routes("kept", 3, persistent: false, Connected, new Subscription("y", 1))));
        Assert.Collection(
            store.Saves,
            save =>
            {
                Assert.Equal("kept", save.ClientId);
                Assert.Equal(1, save.Routes!.Version);
                Assert.Null(save.Routes.Presence);
            },
            save => Assert.Equal(("kept", (ClientRoutes?)null), save));

        // A stale version changes nothing, stored or not.
        Assert.False(await writer.ApplyAsync(Routes("kept", 2, persistent: true, Connected)));
        Assert.Equal(2, store.Saves.Count);
    }

    [Fact]
    public async Task A_restarted_silo_learns_the_live_connection_of_unchanged_routes_from_the_peer_it_catches_up_from()
    {
        // A connected persistent session's routes reach two silos; the durable replica keeps them without presence.
        var store = new RecordingStore();
        var peer = new ReplicaWriter(new RouteTable(), new RecordingStore());
        var connected = Routes("kept", 5, persistent: true, Connected, new Subscription("x", 1));
        Assert.True(await new ReplicaWriter(new RouteTable(), store).ApplyAsync(connected));
        Assert.True(await peer.ApplyAsync(connected));

        // The first silo restarts: its table is read back from disk (no presence), then it copies the peer's entries,
        // the same version with the connection. Without it a session failing over to this silo takes the client for offline.
        var restarted = new RouteTable();
        var writer = new ReplicaWriter(restarted, new RecordingStore());
        Assert.True(restarted.Apply(Assert.Single(store.Saves).Routes!));
        Assert.Null(restarted.Get("kept")!.Presence);
        Assert.True(await writer.ApplyAsync(connected));
        Assert.Equal(Connected, restarted.Get("kept")!.Presence);
        Assert.Equal(["gw"], Gateways(restarted));

        // A copy without presence never takes away one the table holds, and an older version adds none.
        Assert.False(await writer.ApplyAsync(connected with { Presence = null }));
        Assert.Equal(Connected, restarted.Get("kept")!.Presence);
        var other = new RouteTable();
        Assert.True(other.Apply(connected with { Presence = null }));
        Assert.False(other.Apply(connected with { Version = 4 }));
        Assert.Null(other.Get("kept")!.Presence);
    }

    private static List<string> Gateways(RouteTable table)
    {
        var gateways = new HashSet<string>(StringComparer.Ordinal);
        table.CollectGateways(gateways);
        return [.. gateways];
    }

    private static ClientRoutes Routes(string client, long version, bool persistent, GatewayPresence? presence, params Subscription[] subs) =>
        new(client, version, subs, persistent, presence);

    private sealed class RecordingStore : IReplicaStore
    {
        public List<(string ClientId, ClientRoutes? Routes)> Saves { get; } = [];

        public Task SaveRoutesAsync(string clientId, ClientRoutes? routes)
        {
            Saves.Add((clientId, routes));
            return Task.CompletedTask;
        }

        public Task SaveRetainedAsync(RetainedUpdate update) => Task.CompletedTask;

        public Task<(IReadOnlyList<ClientRoutes> Routes, IReadOnlyList<RetainedUpdate> Retained)> LoadAsync() =>
            Task.FromResult<(IReadOnlyList<ClientRoutes>, IReadOnlyList<RetainedUpdate>)>(([], []));
    }
}
