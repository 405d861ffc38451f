using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Hosting;
using Orleans.Mqtt.Telemetry;
using Xunit;

namespace Orleans.Mqtt.Gc.Tests;

/// <summary>
/// The young collection the trimmer runs in an idle process, against the runtime itself: it runs once the threshold has
/// been allocated since the last collection, not while allocation goes on, and it is counted.
/// </summary>
public sealed class IdleYoungCollectionTests
{
    private const long Threshold = 1 << 20;

    [Fact]
    public void A_young_collection_runs_once_the_process_has_allocated_the_threshold_and_gone_quiet()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new MqttMetrics(services.GetRequiredService<IMeterFactory>());
        var trimmer = new HeapTrimmer(
            Options.Create(new MqttBrokerOptions { HeapTrimInterval = TimeSpan.Zero, IdleYoungCollectionBytes = Threshold }),
            metrics,
            NullLogger<HeapTrimmer>.Instance);
        long collections = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument, metrics.IdleYoungCollections))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref collections, value));
        listener.Start();

        // The runtime may collect on its own while the garbage is made (its budget is what it is on the machine that
        // runs this): then that attempt proves nothing and the garbage is made again.
        for (var attempt = 1; ; attempt++)
        {
            var counted = Interlocked.Read(ref collections);
            GC.Collect(0);
            Assert.False(trimmer.CheckYoung()); // notes the collection just made
            var count = GC.CollectionCount(0);
            MakeGarbage(2 * Threshold);
            var whileAllocating = trimmer.CheckYoung(); // twice the threshold since the previous look: not idle
            var onceQuiet = trimmer.CheckYoung();
            if (attempt < 5 && GC.CollectionCount(0) != count + (onceQuiet ? 1 : 0))
            {
                continue;
            }

            Assert.False(whileAllocating);
            Assert.True(onceQuiet);
            Assert.Equal(count + 1, GC.CollectionCount(0));
            Assert.Equal(counted + 1, Interlocked.Read(ref collections));
            break;
        }

        // Its own collection starts the count again.
        Assert.False(trimmer.CheckYoung());
        Assert.False(trimmer.CheckYoung());
    }

    // Small objects that die at once, about this many bytes of them.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void MakeGarbage(long bytes)
    {
        object? last = null;
        for (long made = 0; made < bytes; made += 128)
        {
            last = new byte[100];
        }

        GC.KeepAlive(last);
    }
}
