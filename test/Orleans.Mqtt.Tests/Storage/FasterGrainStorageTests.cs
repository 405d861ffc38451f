using Orleans.Mqtt.Silo.Storage;
using Orleans.Storage;
using Xunit;

namespace Orleans.Mqtt.Tests.Storage;

public sealed class FasterGrainStorageTests : IAsyncLifetime
{
    private readonly StorageTestHarness _harness = new();

    [Fact]
    public async Task FindKeys_lists_the_stored_grains_of_one_type_and_state_that_pass_the_filter()
    {
        await using var storage = await _harness.OpenAsync();
        var sessions = GrainType.Create("clientsession");
        foreach (var key in new[] { "a/1", "a/2", "b", "é-ü" })
        {
            await storage.WriteStateAsync("session", GrainId.Create(sessions, key), new GrainState<TestState>(new TestState { Value = 1 }));
        }

        // Other states and other grain types, some with the same keys, and a record cleared again.
        await storage.WriteStateAsync("other", GrainId.Create(sessions, "a/1"), new GrainState<TestState>(new TestState()));
        await storage.WriteStateAsync("session", GrainId.Create(GrainType.Create("clientsessionx"), "c"), new GrainState<TestState>(new TestState()));
        await storage.WriteStateAsync("session", GrainId.Create(GrainType.Create("client"), "session/d"), new GrainState<TestState>(new TestState()));
        var cleared = new GrainState<TestState>(new TestState());
        await storage.WriteStateAsync("session", GrainId.Create(sessions, "gone"), cleared);
        await storage.ClearStateAsync("session", GrainId.Create(sessions, "gone"), cleared);

        Assert.Equal(["a/1", "a/2", "b", "é-ü"], storage.FindKeys("session", sessions, _ => true).Order(StringComparer.Ordinal));
        Assert.Equal(["a/1", "a/2"], storage.FindKeys("session", sessions, k => k.StartsWith("a/", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        Assert.Empty(storage.FindKeys("absent", sessions, _ => true));
    }

    [Fact]
    public async Task Write_read_clear_round_trip()
    {
        await using var storage = await _harness.OpenAsync();
        var grainId = GrainId.Create("test-grain", "round-trip");

        var missing = new GrainState<TestState>(new TestState { Value = -1 });
        await storage.ReadStateAsync("state", grainId, missing);
        Assert.False(missing.RecordExists);
        Assert.Null(missing.ETag);
        Assert.Equal(0, missing.State!.Value);

        var written = new GrainState<TestState>(new TestState { Value = 7, Text = "seven" });
        await storage.WriteStateAsync("state", grainId, written);
        Assert.True(written.RecordExists);
        Assert.Equal("1", written.ETag);

        written.State!.Value = 8;
        await storage.WriteStateAsync("state", grainId, written);
        Assert.Equal("2", written.ETag);

        var read = new GrainState<TestState>(new TestState());
        await storage.ReadStateAsync("state", grainId, read);
        Assert.True(read.RecordExists);
        Assert.Equal("2", read.ETag);
        Assert.Equal(8, read.State!.Value);
        Assert.Equal("seven", read.State!.Text);

        await storage.ClearStateAsync("state", grainId, read);
        Assert.False(read.RecordExists);
        Assert.Null(read.ETag);

        var afterClear = new GrainState<TestState>(new TestState());
        await storage.ReadStateAsync("state", grainId, afterClear);
        Assert.False(afterClear.RecordExists);
        Assert.Null(afterClear.ETag);

        // A cleared state can be written again from scratch.
        await storage.WriteStateAsync("state", grainId, afterClear);
        Assert.Equal("1", afterClear.ETag);
    }

    [Fact]
    public async Task ETag_mismatch_throws_InconsistentStateException()
    {
        await using var storage = await _harness.OpenAsync();
        var grainId = GrainId.Create("test-grain", "etag");

        var first = new GrainState<TestState>(new TestState { Value = 1 });
        await storage.WriteStateAsync("state", grainId, first);

        // A second copy that never read the record: its null ETag does not match "1".
        var stranger = new GrainState<TestState>(new TestState { Value = 2 });
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("state", grainId, stranger));

        // A stale copy.
        var stale = new GrainState<TestState>(new TestState()) { ETag = first.ETag };
        await storage.WriteStateAsync("state", grainId, first);
        var exception = await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("state", grainId, stale));
        Assert.Equal("2", exception.StoredEtag);
        Assert.Equal("1", exception.CurrentEtag);
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearStateAsync("state", grainId, stale));

        // An ETag for a record that does not exist.
        var ghost = new GrainState<TestState>(new TestState()) { ETag = "5" };
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("state", GrainId.Create("test-grain", "ghost"), ghost));

        // The failed calls changed nothing.
        var read = new GrainState<TestState>(new TestState());
        await storage.ReadStateAsync("state", grainId, read);
        Assert.Equal("2", read.ETag);
        Assert.Equal(1, read.State!.Value);
    }

    [Fact]
    public async Task States_are_keyed_by_state_name_and_grain()
    {
        await using var storage = await _harness.OpenAsync();
        var a = GrainId.Create("test-grain", "a");
        var b = GrainId.Create("other-grain", "a");

        await storage.WriteStateAsync("one", a, new GrainState<TestState>(new TestState { Value = 1 }));
        await storage.WriteStateAsync("two", a, new GrainState<TestState>(new TestState { Value = 2 }));
        await storage.WriteStateAsync("one", b, new GrainState<TestState>(new TestState { Value = 3 }));

        Assert.Equal(1, (await ReadAsync(storage, "one", a)).State!.Value);
        Assert.Equal(2, (await ReadAsync(storage, "two", a)).State!.Value);
        Assert.Equal(3, (await ReadAsync(storage, "one", b)).State!.Value);
        Assert.False((await ReadAsync(storage, "two", b)).RecordExists);
    }

    [Fact]
    public async Task Oversized_state_is_refused_with_a_clear_message()
    {
        await using var storage = await _harness.OpenAsync();
        var state = new GrainState<TestState>(new TestState { Text = new string('x', 2 * 1024 * 1024) });

        var exception = await Assert.ThrowsAsync<InvalidOperationException>(
            () => storage.WriteStateAsync("state", GrainId.Create("test-grain", "big"), state));
        Assert.Contains("MemorySizeBytes", exception.Message);
    }

    [Fact]
    public async Task A_writer_that_blocks_once_its_commit_completes_does_not_hold_up_the_next_commit()
    {
        // The writers of a commit are released off the commit loop: were their continuations run on it, the first
        // writer's continuation below would block the loop, and the second write would never be committed.
        await using var storage = await _harness.OpenAsync();
        var second = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = storage.WriteStateAsync("state", GrainId.Create("test-grain", "first"), new GrainState<TestState>(new TestState { Value = 1 }));
        var blocked = first.ContinueWith(
            _ =>
            {
                var write = storage.WriteStateAsync("state", GrainId.Create("test-grain", "second"), new GrainState<TestState>(new TestState { Value = 2 }));
                second.SetResult(((IAsyncResult)write).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(10)));
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

        Assert.True(await second.Task.WaitAsync(TimeSpan.FromSeconds(20)), "the second write was not committed while the first writer's continuation ran");
        await blocked;
        Assert.Equal(2, (await ReadAsync(storage, "state", GrainId.Create("test-grain", "second"))).State!.Value);
    }

    [Fact]
    public void Validator_names_the_bad_setting()
    {
        var options = new FasterStorageOptions { DataDirectory = " ", IndexBuckets = 1000, IndexCheckpointInterval = TimeSpan.Zero };

        var exception = Assert.Throws<OrleansConfigurationException>(
            () => new FasterStorageOptionsValidator(options, "sessions").ValidateConfiguration());

        Assert.Contains("Storage:DataDirectory must be set", exception.Message);
        Assert.Contains("Storage:IndexBuckets", exception.Message);
        Assert.Contains("Storage:IndexCheckpointInterval", exception.Message);
        Assert.DoesNotContain("MemorySizeBytes", exception.Message);
        Assert.Empty(FasterStorageOptionsValidator.Validate(new FasterStorageOptions(), "sessions"));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _harness.DisposeAsync().AsTask();

    private static async Task<GrainState<TestState>> ReadAsync(FasterGrainStorage storage, string stateName, GrainId grainId)
    {
        var state = new GrainState<TestState>(new TestState());
        await storage.ReadStateAsync(stateName, grainId, state);
        return state;
    }
}
