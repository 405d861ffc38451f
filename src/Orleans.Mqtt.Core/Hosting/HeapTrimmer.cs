using System.Runtime;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Hosting;

/// <summary>
/// Starts the runtime's background full collection once the heap has grown well past what the last such collection
/// left and has stopped growing. A connect storm leaves the short-lived objects of its connects in the oldest
/// generation, where only a full collection frees them, and a broker that then holds idle connections allocates too
/// little to trigger one: that memory stayed resident, several KB per connection (docs/benchmarks.md, "Memory after a
/// connect storm"). A full collection that the runtime itself runs during the storm does not help: what is still in
/// use then survives it and dies right after. The background collection runs beside the broker's threads and does not
/// compact; waiting for the heap to stop growing starts it after a storm rather than during it, when the CPU is
/// needed elsewhere. Checked every <see cref="MqttBrokerOptions.HeapTrimInterval"/>; zero turns it off.
/// </summary>
public sealed partial class HeapTrimmer : BackgroundService
{
    /// <summary>Growth below this is never worth a collection.</summary>
    internal const long MinGrowthBytes = 32L << 20;

    // A started collection is waited for this many checks before the heap is judged again.
    private const int MaxWaits = 12;

    private readonly TimeSpan _interval;
    private readonly MqttMetrics _metrics;
    private readonly ILogger<HeapTrimmer> _logger;
    private long _awaitedIndex = -1;
    private long _previousHeap = -1;
    private long _baseline;
    private int _waits;

    /// <summary>Creates the trimmer with the interval of <paramref name="options"/>.</summary>
    public HeapTrimmer(IOptions<MqttBrokerOptions> options, MqttMetrics metrics, ILogger<HeapTrimmer> logger)
    {
        _interval = options.Value.HeapTrimInterval;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>
    /// Whether a heap of <paramref name="heapBytes"/> (what the last collection of any generation left, dead objects of
    /// the older generations included) has grown past the <paramref name="baselineBytes"/> that the last trim left by a
    /// quarter of those, and by <see cref="MinGrowthBytes"/> at least, and by less than an eighth of that minimum since
    /// the previous check's <paramref name="previousHeapBytes"/> (negative before the first check: the heap may still
    /// be growing).
    /// </summary>
    internal static bool ShouldCollect(long heapBytes, long baselineBytes, long previousHeapBytes) =>
        heapBytes - baselineBytes >= Math.Max(MinGrowthBytes, baselineBytes / 4)
        && previousHeapBytes >= 0 && heapBytes - previousHeapBytes < MinGrowthBytes / 8;

    /// <summary>Looks at the heap once and starts a background full collection if it has grown enough; true if it did.</summary>
    internal bool Check()
    {
        var last = GC.GetGCMemoryInfo(GCKind.Any);
        var heap = last.HeapSizeBytes - last.FragmentedBytes;
        if (_awaitedIndex >= 0)
        {
            if (NewestFullCollection() == _awaitedIndex && ++_waits < MaxWaits)
            {
                // The collection this started has not finished yet.
                return false;
            }

            _awaitedIndex = -1;
            _baseline = heap;
        }

        // A full collection of the runtime's own that freed the growth lowers the baseline with it.
        _baseline = Math.Min(_baseline, heap);
        var previous = _previousHeap;
        _previousHeap = heap;
        if (!ShouldCollect(heap, _baseline, previous))
        {
            return false;
        }

        _awaitedIndex = NewestFullCollection();
        _waits = 0;
        _metrics.HeapTrims.Add(1);
        LogTrimming(_logger, heap >> 20, _baseline >> 20);
        GC.Collect(2, GCCollectionMode.Forced, blocking: false, compacting: false);
        return true;
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_interval <= TimeSpan.Zero)
        {
            return;
        }

        if (GCSettings.LatencyMode == GCLatencyMode.Batch)
        {
            // Without background collections a requested full collection would stop every thread of the broker.
            LogNoBackgroundCollections(_logger);
            return;
        }

        using var timer = new PeriodicTimer(_interval);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            Check();
        }
    }

    // The index of the newest full collection that has finished, blocking or background.
    private static long NewestFullCollection() =>
        Math.Max(GC.GetGCMemoryInfo(GCKind.FullBlocking).Index, GC.GetGCMemoryInfo(GCKind.Background).Index);

    [LoggerMessage(Level = LogLevel.Information, Message = "Heap trimming is off: this process runs without background garbage collections (concurrent GC disabled)")]
    private static partial void LogNoBackgroundCollections(ILogger logger);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Heap at {HeapMiB} MiB, {BaselineMiB} MiB after the last trim: starting a background full collection")]
    private static partial void LogTrimming(ILogger logger, long heapMiB, long baselineMiB);
}
