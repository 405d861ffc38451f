using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Hosting;
using Orleans.Mqtt.Telemetry;
using Xunit;

namespace Orleans.Mqtt.Tests.Hosting;

public sealed class HeapTrimmerTests
{
    private const long MiB = 1 << 20;

    [Theory]
    [InlineData(200, 100, 200, 1, true)] // grown by the baseline's whole size, and no longer growing
    [InlineData(140, 100, 138, 1, true)] // a quarter above the baseline and above the minimum
    [InlineData(120, 100, 120, 1, false)] // a fifth above the baseline: not enough
    [InlineData(60, 0, 60, 1, true)] // a small heap: the minimum decides
    [InlineData(30, 0, 30, 1, false)] // below the minimum
    [InlineData(1200, 1000, 1200, 1, false)] // a large heap needs a quarter of itself
    [InlineData(200, 100, 190, 1, false)] // still growing: the storm is not over
    [InlineData(200, 100, -1, -1, false)] // the first look cannot tell whether it is still growing
    [InlineData(200, 100, 200, 31, true)] // allocating, but less than a busy process
    [InlineData(200, 100, 200, 32, false)] // the heap stands still but the process is busy allocating
    [InlineData(185, 100, 206, 200, false)] // a collection of the runtime's own lowered the heap during a storm
    public void Collects_once_the_heap_has_grown_enough_and_has_stopped_growing(long heap, long baseline, long previous, long allocated, bool collect) =>
        Assert.Equal(collect, HeapTrimmer.ShouldCollect(heap * MiB, baseline * MiB, previous < 0 ? -1 : previous * MiB, allocated < 0 ? -1 : allocated * MiB));

    [Fact]
    public void A_storm_is_collected_once_it_is_over_and_its_collection_sets_the_next_baseline()
    {
        var trimmer = NewTrimmer();
        Assert.Equal(HeapTrim.None, trimmer.Observe(20 * MiB, 0, 400 * MiB, 1)); // after start: small
        Assert.Equal(HeapTrim.None, trimmer.Observe(120 * MiB, 0, 600 * MiB, 1)); // a storm: growing
        Assert.Equal(HeapTrim.None, trimmer.Observe(300 * MiB, 0, 900 * MiB, 1));
        Assert.Equal(HeapTrim.Background, trimmer.Observe(302 * MiB, 0, 910 * MiB, 1)); // over
        Assert.Equal(HeapTrim.None, trimmer.Observe(302 * MiB, 0, 911 * MiB, 1)); // its collection is still running
        Assert.Equal(HeapTrim.None, trimmer.Observe(180 * MiB, 0, 912 * MiB, 2)); // done: 180 MiB is the new baseline
        Assert.Equal(HeapTrim.None, trimmer.Observe(200 * MiB, 0, 940 * MiB, 2)); // a ninth more: not enough
        Assert.Equal(HeapTrim.None, trimmer.Observe(230 * MiB, 0, 970 * MiB, 2));
        Assert.Equal(HeapTrim.Background, trimmer.Observe(231 * MiB, 0, 971 * MiB, 2)); // a quarter more, and quiet
    }

    [Fact]
    public void A_storm_is_collected_once_it_stops_allocating_not_when_a_collection_of_the_runtime_lowers_the_heap()
    {
        // A silo's heap (less its free space) and its allocations every 5 s through the end of a connect storm of
        // 50,000 clients (docs/benchmarks.md, "Idle memory at 50,000: when the trim runs").
        var trimmer = NewTrimmer();
        Assert.Equal(HeapTrim.None, trimmer.Observe(20 * MiB, 0, 400 * MiB, 1)); // after start
        Assert.Equal(HeapTrim.None, trimmer.Observe(206 * MiB, 0, 1136 * MiB, 1)); // the storm
        Assert.Equal(HeapTrim.None, trimmer.Observe(185 * MiB, 0, 1339 * MiB, 2)); // a full collection of the runtime's own: lower, but 200 MiB allocated
        Assert.Equal(HeapTrim.None, trimmer.Observe(212 * MiB, 0, 1483 * MiB, 2));
        Assert.Equal(HeapTrim.None, trimmer.Observe(230 * MiB, 0, 1600 * MiB, 2)); // the storm's last connects
        Assert.Equal(HeapTrim.Background, trimmer.Observe(233 * MiB, 0, 1623 * MiB, 2)); // over: 23 MiB allocated, the heap still
    }

    [Theory]
    [InlineData(170, 98, true)] // a silo's background collection after a storm of 50,000 connects: 36 % free
    [InlineData(170, 60, true)] // a quarter of the heap with its free space
    [InlineData(170, 50, false)] // less than a quarter
    [InlineData(60, 31, false)] // more than a quarter of a small heap, but under the minimum
    [InlineData(60, 32, true)]
    [InlineData(168, 2, false)] // after the young collections that follow a background one
    public void Compacts_when_a_collection_left_a_quarter_of_the_heap_free(long heap, long free, bool compact) =>
        Assert.Equal(compact, HeapTrimmer.ShouldCompact(heap * MiB, free * MiB));

    [Fact]
    public void A_trim_after_growth_that_left_much_free_is_followed_by_one_compacting_collection()
    {
        var trimmer = NewTrimmer();
        Assert.Equal(HeapTrim.None, trimmer.Observe(60 * MiB, 0, 400 * MiB, 1));
        Assert.Equal(HeapTrim.None, trimmer.Observe(230 * MiB, 0, 1600 * MiB, 1)); // the storm
        Assert.Equal(HeapTrim.Background, trimmer.Observe(233 * MiB, 0, 1620 * MiB, 1)); // over
        Assert.Equal(HeapTrim.Compacting, trimmer.Observe(170 * MiB, 98 * MiB, 1621 * MiB, 2)); // done, 98 MiB left free
        Assert.Equal(HeapTrim.None, trimmer.Observe(170 * MiB, 0, 1621 * MiB, 3)); // compacted: nothing more

        // The process's first idle trim is a compacting collection; the idle trims after it never compact, whatever
        // they leave free.
        var index = 3L;
        Assert.Equal(HeapTrim.Compacting, NextTrim(trimmer, 170 * MiB, 98 * MiB, index));
        Assert.Equal(HeapTrim.None, trimmer.Observe(170 * MiB, 98 * MiB, 1621 * MiB, ++index));
        for (var round = 0; round < 3; round++)
        {
            Assert.Equal(HeapTrim.Background, NextTrim(trimmer, 170 * MiB, 98 * MiB, index));
            Assert.Equal(HeapTrim.None, trimmer.Observe(170 * MiB, 98 * MiB, 1621 * MiB, ++index));
        }
    }

    [Fact]
    public void No_compacting_collection_when_it_is_turned_off()
    {
        var trimmer = NewTrimmer(compactAfterGrowth: false);
        Assert.Equal(HeapTrim.None, trimmer.Observe(60 * MiB, 0, 400 * MiB, 1));
        Assert.Equal(HeapTrim.None, trimmer.Observe(230 * MiB, 0, 1600 * MiB, 1));
        Assert.Equal(HeapTrim.Background, trimmer.Observe(233 * MiB, 0, 1620 * MiB, 1));
        Assert.Equal(HeapTrim.None, trimmer.Observe(170 * MiB, 98 * MiB, 1621 * MiB, 2)); // 98 MiB free, left resident
    }

    [Fact]
    public void No_compacting_collection_when_the_trim_left_little_free()
    {
        var trimmer = NewTrimmer();
        Assert.Equal(HeapTrim.None, trimmer.Observe(60 * MiB, 0, 400 * MiB, 1));
        Assert.Equal(HeapTrim.None, trimmer.Observe(230 * MiB, 0, 1600 * MiB, 1));
        Assert.Equal(HeapTrim.Background, trimmer.Observe(233 * MiB, 0, 1620 * MiB, 1));
        Assert.Equal(HeapTrim.None, trimmer.Observe(170 * MiB, 2 * MiB, 1621 * MiB, 2)); // young collections since gave it back
    }

    [Fact]
    public void An_idle_heap_is_collected_after_a_minute_without_a_full_collection_and_less_often_while_that_frees_little()
    {
        var trimmer = NewTrimmer();
        var index = 5L;
        Assert.Equal(HeapTrim.None, trimmer.Observe(100 * MiB, 0, 0, index)); // the first look
        Assert.Equal(HeapTrim.Background, trimmer.Observe(100 * MiB, 0, 0, index)); // 100 MiB above the empty baseline: a trim
        Assert.Equal(HeapTrim.None, trimmer.Observe(90 * MiB, 0, 0, ++index)); // done: the baseline, and the idle count starts

        Assert.Equal(HeapTrimmer.IdleChecks, IdleChecksUntilTrim(trimmer, 90 * MiB, index));
        Assert.Equal(HeapTrim.None, trimmer.Observe(40 * MiB, 0, 0, ++index)); // it freed 50 of 90 MiB: the same wait again
        Assert.Equal(HeapTrimmer.IdleChecks, trimmer.IdleWait);

        Assert.Equal(HeapTrimmer.IdleChecks, IdleChecksUntilTrim(trimmer, 40 * MiB, index));
        Assert.Equal(HeapTrim.None, trimmer.Observe(39 * MiB, 0, 0, ++index)); // it freed almost nothing: wait twice as long
        Assert.Equal(2 * HeapTrimmer.IdleChecks, trimmer.IdleWait);

        // A full collection of the runtime's own restarts the count.
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(HeapTrim.None, trimmer.Observe(39 * MiB, 0, 0, index));
        }

        Assert.Equal(HeapTrim.None, trimmer.Observe(39 * MiB, 0, 0, ++index));
        Assert.Equal(2 * HeapTrimmer.IdleChecks, IdleChecksUntilTrim(trimmer, 39 * MiB, index));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)] // Mqtt:HeapCompactAfterGrowth off: no blocking collection at all
    public void The_first_idle_trim_gives_the_free_memory_back_and_later_ones_run_in_the_background(bool compact)
    {
        // A standalone broker after its start: 136 MiB of heap, 64 MiB once the start's garbage has died.
        var trimmer = NewTrimmer(compact);
        var index = 1L;
        Assert.Equal(HeapTrim.None, trimmer.Observe(136 * MiB, 0, 0, index));
        Assert.Equal(HeapTrim.Background, trimmer.Observe(136 * MiB, 0, 0, index)); // grown from the empty baseline
        Assert.Equal(HeapTrim.None, trimmer.Observe(64 * MiB, 0, 0, ++index));

        Assert.Equal(compact ? HeapTrim.Compacting : HeapTrim.Background, NextTrim(trimmer, 64 * MiB, 0, index));
        Assert.Equal(HeapTrim.None, trimmer.Observe(64 * MiB, 0, 0, ++index));
        Assert.Equal(HeapTrim.Background, NextTrim(trimmer, 64 * MiB, 0, index));
        Assert.Equal(HeapTrim.None, trimmer.Observe(64 * MiB, 0, 0, ++index));
        Assert.Equal(HeapTrim.Background, NextTrim(trimmer, 64 * MiB, 0, index));
    }

    [Fact]
    public void A_small_idle_heap_is_left_alone()
    {
        var trimmer = NewTrimmer();
        for (var i = 0; i < 10 * HeapTrimmer.IdleChecks; i++)
        {
            Assert.Equal(HeapTrim.None, trimmer.Observe(30 * MiB, 0, 0, 1));
        }
    }

    [Fact]
    public void The_wait_between_idle_collections_stops_growing_at_its_maximum()
    {
        var trimmer = NewTrimmer();
        var index = 1L;
        for (var round = 0; round < 12; round++)
        {
            IdleChecksUntilTrim(trimmer, 100 * MiB, index);
            trimmer.Observe(100 * MiB, 0, 0, ++index);
        }

        Assert.Equal(HeapTrimmer.MaxIdleChecks, trimmer.IdleWait);
    }

    private static HeapTrimmer NewTrimmer(bool compactAfterGrowth = true)
    {
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        return new HeapTrimmer(
            Options.Create(new MqttBrokerOptions { HeapTrimInterval = TimeSpan.Zero, HeapCompactAfterGrowth = compactAfterGrowth }),
            new MqttMetrics(services.GetRequiredService<IMeterFactory>()),
            NullLogger<HeapTrimmer>.Instance);
    }

    // Looks at an unchanging heap, allocating nothing, until a collection is asked for; which one.
    private static HeapTrim NextTrim(HeapTrimmer trimmer, long heap, long free, long index)
    {
        for (var looks = 1; looks <= 10 * HeapTrimmer.MaxIdleChecks; looks++)
        {
            var trim = trimmer.Observe(heap, free, 0, index);
            if (trim != HeapTrim.None)
            {
                return trim;
            }
        }

        return HeapTrim.None;
    }

    // Looks at an unchanging heap until a trim starts; the number of looks it took.
    private static int IdleChecksUntilTrim(HeapTrimmer trimmer, long heap, long index)
    {
        for (var looks = 1; looks <= 10 * HeapTrimmer.MaxIdleChecks; looks++)
        {
            if (trimmer.Observe(heap, 0, 0, index) != HeapTrim.None)
            {
                return looks;
            }
        }

        return -1;
    }
}
