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
    [InlineData(200, 100, 200, true)] // grown by the baseline's whole size, and no longer growing
    [InlineData(140, 100, 138, true)] // a quarter above the baseline and above the minimum
    [InlineData(120, 100, 120, false)] // a fifth above the baseline: not enough
    [InlineData(60, 0, 60, true)] // a small heap: the minimum decides
    [InlineData(30, 0, 30, false)] // below the minimum
    [InlineData(1200, 1000, 1200, false)] // a large heap needs a quarter of itself
    [InlineData(200, 100, 190, false)] // still growing: the storm is not over
    [InlineData(200, 100, -1, false)] // the first look cannot tell whether it is still growing
    public void Collects_once_the_heap_has_grown_enough_and_has_stopped_growing(long heap, long baseline, long previous, bool collect) =>
        Assert.Equal(collect, HeapTrimmer.ShouldCollect(heap * MiB, baseline * MiB, previous < 0 ? -1 : previous * MiB));

    [Fact]
    public void A_storm_is_collected_once_it_is_over_and_its_collection_sets_the_next_baseline()
    {
        var trimmer = NewTrimmer();
        Assert.False(trimmer.Observe(20 * MiB, 1)); // after start: small
        Assert.False(trimmer.Observe(120 * MiB, 1)); // a storm: growing
        Assert.False(trimmer.Observe(300 * MiB, 1));
        Assert.True(trimmer.Observe(302 * MiB, 1)); // over
        Assert.False(trimmer.Observe(302 * MiB, 1)); // its collection is still running
        Assert.False(trimmer.Observe(180 * MiB, 2)); // done: 180 MiB is the new baseline
        Assert.False(trimmer.Observe(200 * MiB, 2)); // a ninth more: not enough
        Assert.False(trimmer.Observe(230 * MiB, 2));
        Assert.True(trimmer.Observe(231 * MiB, 2)); // a quarter more, and quiet
    }

    [Fact]
    public void An_idle_heap_is_collected_after_a_minute_without_a_full_collection_and_less_often_while_that_frees_little()
    {
        var trimmer = NewTrimmer();
        var index = 5L;
        Assert.False(trimmer.Observe(100 * MiB, index)); // the first look
        Assert.True(trimmer.Observe(100 * MiB, index)); // 100 MiB above the empty baseline: a trim
        Assert.False(trimmer.Observe(90 * MiB, ++index)); // done: the baseline, and the idle count starts

        Assert.Equal(HeapTrimmer.IdleChecks, IdleChecksUntilTrim(trimmer, 90 * MiB, index));
        Assert.False(trimmer.Observe(40 * MiB, ++index)); // it freed 50 of 90 MiB: the same wait again
        Assert.Equal(HeapTrimmer.IdleChecks, trimmer.IdleWait);

        Assert.Equal(HeapTrimmer.IdleChecks, IdleChecksUntilTrim(trimmer, 40 * MiB, index));
        Assert.False(trimmer.Observe(39 * MiB, ++index)); // it freed almost nothing: wait twice as long
        Assert.Equal(2 * HeapTrimmer.IdleChecks, trimmer.IdleWait);

        // A full collection of the runtime's own restarts the count.
        for (var i = 0; i < 10; i++)
        {
            Assert.False(trimmer.Observe(39 * MiB, index));
        }

        Assert.False(trimmer.Observe(39 * MiB, ++index));
        Assert.Equal(2 * HeapTrimmer.IdleChecks, IdleChecksUntilTrim(trimmer, 39 * MiB, index));
    }

    [Fact]
    public void A_small_idle_heap_is_left_alone()
    {
        var trimmer = NewTrimmer();
        for (var i = 0; i < 10 * HeapTrimmer.IdleChecks; i++)
        {
            Assert.False(trimmer.Observe(30 * MiB, 1));
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
            trimmer.Observe(100 * MiB, ++index);
        }

        Assert.Equal(HeapTrimmer.MaxIdleChecks, trimmer.IdleWait);
    }

    [Fact]
    public void An_idle_process_gets_a_young_collection_once_it_has_allocated_the_threshold_since_its_last()
    {
        var trimmer = NewTrimmer(idleYoungBytes: 4 * MiB);
        Assert.False(trimmer.ObserveYoung(10, 500 * MiB)); // the first look only notes where it is
        var allocated = 500 * MiB;
        var looks = 0;
        do
        {
            allocated += MiB / 4; // an idle gateway's keep-alives and scrapes: a quarter of a MiB between looks
            looks++;
        }
        while (!trimmer.ObserveYoung(10, allocated) && looks < 100);

        Assert.Equal(16, looks); // 4 MiB, no sooner
        Assert.False(trimmer.ObserveYoung(11, allocated)); // the collection it ran: the count starts again
        Assert.False(trimmer.ObserveYoung(11, allocated + (3 * MiB)));
        Assert.True(trimmer.ObserveYoung(11, allocated + (4 * MiB)));
    }

    [Fact]
    public void A_busy_process_is_left_to_the_runtimes_own_young_collections()
    {
        var trimmer = NewTrimmer(idleYoungBytes: 4 * MiB);
        var allocated = 0L;
        Assert.False(trimmer.ObserveYoung(1, allocated));
        for (var look = 0; look < 50; look++)
        {
            allocated += 4 * MiB; // the threshold or more between two looks: not idle, however much has piled up
            Assert.False(trimmer.ObserveYoung(1, allocated));
        }

        // Quiet again: the next look with little allocated since the previous one collects what piled up.
        Assert.True(trimmer.ObserveYoung(1, allocated + MiB));
    }

    [Fact]
    public void A_collection_of_the_runtimes_own_restarts_the_count()
    {
        var trimmer = NewTrimmer(idleYoungBytes: 4 * MiB);
        Assert.False(trimmer.ObserveYoung(1, 0));
        Assert.False(trimmer.ObserveYoung(1, 3 * MiB));
        Assert.False(trimmer.ObserveYoung(2, 3 * MiB + (MiB / 2))); // the runtime collected in between
        Assert.False(trimmer.ObserveYoung(2, 6 * MiB)); // 2.5 MiB since then
        Assert.True(trimmer.ObserveYoung(2, 7 * MiB + (MiB / 2)));
    }

    [Fact]
    public void Zero_turns_the_idle_young_collection_off()
    {
        var trimmer = NewTrimmer(idleYoungBytes: 0);
        Assert.False(trimmer.ObserveYoung(1, 0));
        for (var look = 1; look <= 50; look++)
        {
            Assert.False(trimmer.ObserveYoung(1, look * MiB));
        }
    }

    private static HeapTrimmer NewTrimmer(long idleYoungBytes = 4 * MiB)
    {
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        return new HeapTrimmer(
            Options.Create(new MqttBrokerOptions { HeapTrimInterval = TimeSpan.Zero, IdleYoungCollectionBytes = idleYoungBytes }),
            new MqttMetrics(services.GetRequiredService<IMeterFactory>()),
            NullLogger<HeapTrimmer>.Instance);
    }

    // Looks at an unchanging heap until a trim starts; the number of looks it took.
    private static int IdleChecksUntilTrim(HeapTrimmer trimmer, long heap, long index)
    {
        for (var looks = 1; looks <= 10 * HeapTrimmer.MaxIdleChecks; looks++)
        {
            if (trimmer.Observe(heap, index))
            {
                return looks;
            }
        }

        return -1;
    }
}
