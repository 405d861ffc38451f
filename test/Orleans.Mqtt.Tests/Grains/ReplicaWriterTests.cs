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
