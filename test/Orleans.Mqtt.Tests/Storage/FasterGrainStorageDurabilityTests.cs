using Orleans.Mqtt.Silo.Storage;
using Xunit;

namespace Orleans.Mqtt.Tests.Storage;

/// <summary>
/// A "crash" here is <see cref="FasterGrainStorage.DisposeAsync"/> without the lifecycle stop: the files are
/// released without a final checkpoint, so recovery sees only what the group commits wrote.
/// </summary>
[Collection(StorageLoadCollection.Name)]
public sealed class FasterGrainStorageDurabilityTests : IAsyncLifetime
{
    private readonly StorageTestHarness _harness = new();

    public static TheoryData<int> FullCheckpointIntervalsMs => new() { 60_000, 50 };

    [Theory]
    [MemberData(nameof(FullCheckpointIntervalsMs))]
    public async Task Acknowledged_writes_and_clears_survive_a_crash(int fullCheckpointIntervalMs)
    {
        void Configure(FasterStorageOptions options) => options.IndexCheckpointInterval = TimeSpan.FromMilliseconds(fullCheckpointIntervalMs);
        const int count = 300;
        var expected = new Dictionary<int, GrainState<TestState>>();

        var storage = await _harness.OpenAsync(configure: Configure);
        for (var i = 0; i < count; i++)
        {
            var state = new GrainState<TestState>(new TestState { Value = i, Text = $"first {i}" });
            await storage.WriteStateAsync("state", Grain(i), state);
            expected[i] = state;
        }

        // Overwrites (in place while the record is in the mutable region) and clears (tombstones).
        for (var i = 0; i < count; i += 2)
        {
            expected[i].State!.Text = $"second {i}";
            await storage.WriteStateAsync("state", Grain(i), expected[i]);
        }

        for (var i = 0; i < count; i += 5)
        {
            await storage.ClearStateAsync("state", Grain(i), expected[i]);
        }

        await storage.DisposeAsync();

        storage = await _harness.OpenAsync(configure: Configure);
        await AssertStatesAsync(storage, expected);

        // Keep going on the recovered store, crash again, recover again.
        for (var i = 0; i < count; i += 3)
        {
            if (expected[i].RecordExists)
            {
                await storage.ClearStateAsync("state", Grain(i), expected[i]);
            }
            else
            {
                expected[i].State = new TestState { Value = i, Text = $"third {i}" };
                await storage.WriteStateAsync("state", Grain(i), expected[i]);
            }
        }

        await storage.DisposeAsync();

        await using var recovered = await _harness.OpenAsync(configure: Configure);
        await AssertStatesAsync(recovered, expected);
    }

    [Fact]
    public async Task Writes_and_clears_racing_full_checkpoints_survive_a_crash()
    {
        // Full checkpoints every few milliseconds start while writers are in the middle of changes; each writer's
        // last acknowledged state of each of its keys must be what recovery returns. The writers go on until enough
        // checkpoints have ended under them (a slow disk only makes that take longer).
        const int writers = 8;
        const int keysPerWriter = 40;
        const int checkpointsUnderLoad = 50;
        void Configure(FasterStorageOptions options) => options.IndexCheckpointInterval = TimeSpan.FromMilliseconds(3);
        var storage = await _harness.OpenAsync(configure: Configure);
        var expected = new GrainState<TestState>?[writers * keysPerWriter];
        var checkpointsBefore = storage.FullCheckpointCount;
        long Checkpoints() => storage.FullCheckpointCount - checkpointsBefore;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        await Task.WhenAll(Enumerable.Range(0, writers).Select(writer => Task.Run(async () =>
        {
            // One more round over its keys once enough checkpoints have ended, so the last changes are also ones that
            // only the write-ahead log holds.
            var lastRound = -1;
            for (var n = 0; (lastRound < 0 || n < lastRound + keysPerWriter) && DateTime.UtcNow < deadline; n++)
            {
                if (lastRound < 0 && Checkpoints() >= checkpointsUnderLoad)
                {
                    lastRound = n;
                }

                var key = (writer * keysPerWriter) + (n % keysPerWriter);
                var state = expected[key] ??= new GrainState<TestState>(new TestState());
                if (state.RecordExists && n % 3 == 0)
                {
                    await storage.ClearStateAsync("state", Grain(key), state);
                }
                else
                {
                    state.State = new TestState { Value = n, Text = $"write {n}" };
                    await storage.WriteStateAsync("state", Grain(key), state);
                }
            }
        })));

        Assert.True(Checkpoints() >= checkpointsUnderLoad, $"only {Checkpoints()} full checkpoints in 60 s of writes");
        await storage.DisposeAsync();

        await using var recovered = await _harness.OpenAsync(configure: Configure);
        await AssertStatesAsync(recovered, Enumerable.Range(0, expected.Length)
            .Where(key => expected[key] is not null)
            .ToDictionary(key => key, key => expected[key]!));
    }

    [Fact]
    public async Task A_write_cut_short_at_the_end_of_the_log_is_ignored_and_later_writes_survive()
    {
        var storage = await _harness.OpenAsync();
        var first = new GrainState<TestState>(new TestState { Value = 1, Text = "acknowledged" });
        await storage.WriteStateAsync("state", Grain(1), first);
        await storage.DisposeAsync();

        // What a crash in the middle of a log write leaves: the start of a record.
        var segment = Directory.GetFiles(Path.Combine(_harness.Root, "grain-state", "test", "wal"), "*.wal").OrderBy(path => path).Last();
        Assert.True(new FileInfo(segment).Length > 0);
        await File.AppendAllBytesAsync(segment, [0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);

        storage = await _harness.OpenAsync();
        var read = new GrainState<TestState>(new TestState());
        await storage.ReadStateAsync("state", Grain(1), read);
        Assert.Equal("acknowledged", read.State!.Text);
        var second = new GrainState<TestState>(new TestState { Value = 2, Text = "after the torn write" });
        await storage.WriteStateAsync("state", Grain(2), second);
        await storage.DisposeAsync();

        await using var recovered = await _harness.OpenAsync();
        await AssertStatesAsync(recovered, new Dictionary<int, GrainState<TestState>> { [1] = first, [2] = second });
    }

    [Fact]
    public async Task Graceful_stop_then_reopen_keeps_state_and_etag_sequence()
    {
        var storage = await _harness.OpenAsync();
        var state = new GrainState<TestState>(new TestState { Value = 1 });
        await storage.WriteStateAsync("state", Grain(1), state);
        await storage.WriteStateAsync("state", Grain(1), state);
        await storage.StopAsync(CancellationToken.None);
        await storage.DisposeAsync();

        await using var reopened = await _harness.OpenAsync();
        var read = new GrainState<TestState>(new TestState());
        await reopened.ReadStateAsync("state", Grain(1), read);
        Assert.Equal("2", read.ETag);
        await reopened.WriteStateAsync("state", Grain(1), read);
        Assert.Equal("3", read.ETag);
    }

    [Fact]
    public async Task Concurrent_writers_share_commits_and_all_survive_a_crash()
    {
        const int writers = 64;
        const int writes = 2_000;

        // 2,000 states of ~10 KB are more than the 16 MiB in-memory log: part of them are read back from disk.
        var padding = new string('p', 10_000);
        var storage = await _harness.OpenAsync();
        var etags = new string?[writes];
        await Task.WhenAll(Enumerable.Range(0, writers).Select(writer => Task.Run(async () =>
        {
            for (var i = writer; i < writes; i += writers)
            {
                var state = new GrainState<TestState>(new TestState { Value = i, Text = padding });
                await storage.WriteStateAsync("state", Grain(i), state);
                etags[i] = state.ETag;
            }
        })));

        Assert.All(etags, etag => Assert.Equal("1", etag));

        // Group commit: concurrent writes shared checkpoints.
        Assert.InRange(storage.CommitCount, 1, writes - 1);
        await storage.DisposeAsync();

        await using var recovered = await _harness.OpenAsync();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(reader => Task.Run(async () =>
        {
            for (var i = reader; i < writes; i += writers)
            {
                var state = new GrainState<TestState>(new TestState());
                await recovered.ReadStateAsync("state", Grain(i), state);
                Assert.True(state.RecordExists, $"state {i} missing after recovery");
                Assert.Equal(i, state.State!.Value);
                Assert.Equal(padding, state.State!.Text);
                Assert.Equal("1", state.ETag);
            }
        })));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _harness.DisposeAsync().AsTask();

    private static GrainId Grain(int i) => GrainId.Create("test-grain", i.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static async Task AssertStatesAsync(FasterGrainStorage storage, Dictionary<int, GrainState<TestState>> expected)
    {
        foreach (var (i, want) in expected)
        {
            var read = new GrainState<TestState>(new TestState());
            await storage.ReadStateAsync("state", Grain(i), read);
            Assert.True(want.RecordExists == read.RecordExists, $"state {i}: expected RecordExists={want.RecordExists}");
            Assert.Equal(want.ETag, read.ETag);
            if (want.RecordExists)
            {
                Assert.Equal(want.State!.Value, read.State!.Value);
                Assert.Equal(want.State!.Text, read.State!.Text);
            }
        }
    }
}

/// <summary>
/// Storage tests that load both cores (many concurrent writers, blocking FASTER completions) run alone, so they
/// do not starve the in-process Orleans clusters of the other test classes into call timeouts.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class StorageLoadCollection
{
    public const string Name = "storage under load";
}
