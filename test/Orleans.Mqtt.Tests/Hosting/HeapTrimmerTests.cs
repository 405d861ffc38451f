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

    private static HeapTrimmer NewTrimmer()
    {
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        return new HeapTrimmer(
            Options.Create(new MqttBrokerOptions { HeapTrimInterval = TimeSpan.Zero }),
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
