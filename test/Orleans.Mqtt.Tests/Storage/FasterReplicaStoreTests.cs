using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Silo.Storage;
using Xunit;

namespace Orleans.Mqtt.Tests.Storage;

/// <summary>
/// The route replica's durable records live in the session grain storage's store: one log and one commit for a
/// session's state and its routes; and a replica store of its own, the layout before, is moved in at start.
/// </summary>
[Collection(StorageLoadCollection.Name)]
public sealed class FasterReplicaStoreTests : IAsyncLifetime
{
    private readonly StorageTestHarness _harness = new();

    [Fact]
    public async Task Routes_are_committed_by_the_session_storage_and_survive_a_crash_with_it()
    {
        var storage = await _harness.OpenAsync(MqttGrainStorage.Name);
        var replica = ReplicaOver(storage);
        var commitsBefore = storage.CommitCount;

        await replica.SaveRoutesAsync("c1", Routes("c1", 7, "a/b"));
        await replica.SaveRetainedAsync(new RetainedUpdate("t/1", 3, new MqttMessage { Topic = "t/1", Payload = new byte[] { 1 } }));

        // The routes' own writes were made durable by the session storage's commit loop: no store of their own.
        Assert.True(storage.CommitCount > commitsBefore, "the routes' save did not go through the session storage's commit");
        await storage.WriteStateAsync("session", GrainId.Create("session", "c1"), new GrainState<TestState>(new TestState { Value = 1 }));

        // A crash (no final checkpoint): what the commits wrote comes back, and the grain's record is not read as a route.
        await storage.DisposeAsync();
        storage = await _harness.OpenAsync(MqttGrainStorage.Name);
        var (routes, retained) = await ReplicaOver(storage).LoadAsync();
        var loaded = Assert.Single(routes);
        Assert.Equal(("c1", 7L, "a/b"), (loaded.ClientId, loaded.Version, loaded.Subscriptions[0].Filter));
        Assert.Equal("t/1", Assert.Single(retained).Topic);
        Assert.False(Directory.Exists(Path.Combine(_harness.Root, "replica")));
    }

    [Fact]
    public async Task A_replica_store_of_its_own_is_moved_into_the_shared_store_and_deleted()
    {
        // The layout before: the replica in DataDirectory/replica, a FASTER store of its own.
        var legacyDirectory = Path.Combine(_harness.Root, "replica");
        var legacy = new FasterStore(legacyDirectory, StorageTestHarness.SmallOptions(legacyDirectory), TimeProvider.System, NullLogger.Instance);
        await legacy.OpenAsync(CancellationToken.None);
        foreach (var (clientId, version) in new[] { ("old1", 11L), ("old2", 12L) })
        {
            var key = Encoding.UTF8.GetBytes("r/" + clientId);
            legacy.Upsert(key, key.Length, version, _harness.Serializer.SerializeToArray(Routes(clientId, version, "x/" + clientId)));
        }

        await legacy.WaitForCommitAsync();
        await legacy.DisposeAsync();

        var storage = await _harness.OpenAsync(MqttGrainStorage.Name);
        await ReplicaOver(storage).MigrateAsync(CancellationToken.None);
        Assert.False(Directory.Exists(legacyDirectory), "the old replica directory is still there");

        // Moved durably: a crash right after the move loses nothing.
        await storage.DisposeAsync();
        storage = await _harness.OpenAsync(MqttGrainStorage.Name);
        var replica = ReplicaOver(storage);
        await replica.MigrateAsync(CancellationToken.None);
        var (routes, _) = await replica.LoadAsync();
        Assert.Equal(
            [("old1", 11L, "x/old1"), ("old2", 12L, "x/old2")],
            routes.Select(r => (r.ClientId, r.Version, r.Subscriptions[0].Filter)).OrderBy(r => r.ClientId));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    private FasterReplicaStore ReplicaOver(FasterGrainStorage storage) =>
        new(storage.Store, Path.Combine(_harness.Root, "replica"), _harness.Serializer, TimeProvider.System, NullLogger.Instance);

    private static ClientRoutes Routes(string clientId, long version, string filter) =>
        new(clientId, version, [new Subscription(filter, 1)], Persistent: true, Presence: null, SessionExpiryInterval: 300);
}
