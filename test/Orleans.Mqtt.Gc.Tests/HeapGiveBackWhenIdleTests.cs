using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Hosting;
using Xunit;

namespace Orleans.Mqtt.Gc.Tests;

/// <summary>
/// An idle trim gives back the memory the runtime holds beyond the live objects: free space that a background
/// collection leaves inside the oldest generation's regions, committed and resident.
/// </summary>
public sealed class HeapGiveBackWhenIdleTests
{
    // Small arrays of 200 bytes (232 with their header and their slot in the list): 120 MiB of them, a third kept.
    private const int Count = (120 << 20) / 232;

    [Fact]
    public async Task An_idle_trim_compacts_the_free_space_a_background_collection_left_and_gives_it_back()
    {
        using var trims = new HeapTrimsCounter();
        var trimmer = new HeapTrimmer(Options.Create(new MqttBrokerOptions { HeapTrimInterval = TimeSpan.Zero }), trims.Metrics, NullLogger<HeapTrimmer>.Instance);

        // Every third array lives on, the others die after a full collection has put them all in the oldest generation:
        // every region there keeps live objects, so only a compaction can free one.
        var kept = ThirdOfWhatLivedThroughAFullCollection();
        Assert.False(trimmer.Check()); // the first look only notes the heap

        // The heap as the last collection left it holds the dead two thirds: grown and quiet, a background trim.
        var before = Newest();
        Assert.True(trimmer.Check());
        Assert.True(await WaitForFullCollectionAsync(before), "the background trim did not run");
        var afterBackground = GC.GetGCMemoryInfo(GCKind.Any);
        var live = afterBackground.HeapSizeBytes - afterBackground.FragmentedBytes;
        Assert.True(
            afterBackground.TotalCommittedBytes - live > 60L << 20,
            $"the background trim left {afterBackground.TotalCommittedBytes >> 20} MiB committed for {live >> 20} MiB live");

        // Idle: no full collection for a minute of checks, nothing allocated. The idle trim compacts.
        var trimsBefore = trims.Trims;
        var checks = 0;
        while (!trimmer.Check())
        {
            Assert.True(++checks <= 2 * HeapTrimmer.IdleChecks, "no idle trim");
        }

        var after = GC.GetGCMemoryInfo(GCKind.Any);
        Assert.Equal(trimsBefore + 1, trims.Trims);
        Assert.True(
            after.TotalCommittedBytes < afterBackground.TotalCommittedBytes - (50L << 20),
            $"committed {afterBackground.TotalCommittedBytes >> 20} MiB before the idle trim, {after.TotalCommittedBytes >> 20} MiB after");
        GC.KeepAlive(kept);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static byte[][] ThirdOfWhatLivedThroughAFullCollection()
    {
        var all = new byte[Count][];
        for (var i = 0; i < all.Length; i++)
        {
            all[i] = new byte[200];
        }

        GC.Collect();
        var kept = new byte[Count / 3][];
        for (var i = 0; i < kept.Length; i++)
        {
            kept[i] = all[i * 3];
        }

        return kept;
    }

    private static long Newest() =>
        Math.Max(GC.GetGCMemoryInfo(GCKind.FullBlocking).Index, GC.GetGCMemoryInfo(GCKind.Background).Index);

    private static async Task<bool> WaitForFullCollectionAsync(long after)
    {
        for (var i = 0; i < 200 && Newest() <= after; i++)
        {
            await Task.Delay(25);
        }

        return Newest() > after;
    }
}
