using System.Diagnostics;
using System.Runtime;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Hosting;

/// <summary>
/// Starts the runtime's background full collection when a broker process holds garbage that nothing else would free.
/// <list type="bullet">
/// <item>After growth: the heap has grown well past what the last trim left, and has stopped growing. A connect storm
/// leaves the short-lived objects of its connects in the oldest generation, where only a full collection frees them,
/// and a broker that then holds idle connections allocates too little to trigger one: that memory stayed resident,
/// several KB per connection (docs/benchmarks-history.md, "Memory after a connect storm"). A full collection that the
/// runtime itself runs during the storm does not help: what is still in use then survives it and dies right after.
/// Waiting for the heap to stop growing, and for the process to stop allocating, starts it after a storm rather than
/// during it, when the CPU is needed elsewhere and what the storm still uses would survive it.</item>
/// <item>When idle: no full collection for <see cref="IdleChecks"/> checks. What dies without new allocations, such
/// as the sessions that leave a silo's memory when idle, does not grow the heap. A trim that frees less than an
/// eighth of the heap doubles this wait, up to <see cref="MaxIdleChecks"/> checks, so an idle process with nothing to
/// free is not collected every minute.</item>
/// </list>
/// The background collection runs beside the broker's threads and does not compact: what it frees stays committed, and
/// resident, until a later collection gives it back, and a broker that holds idle connections may run none for
/// minutes. So when the collection of a trim after growth has left at least a quarter of the heap free, and
/// <see cref="MinGrowthBytes"/> at least, one blocking, compacting collection follows that returns it to the system
/// (docs/benchmarks.md, "Idle memory at 50,000: when the trim runs": 108–140 MiB of a silo's RSS after a storm of
/// 50,000 connects). It stops every thread while it runs; it follows only a trim after growth, so it runs once per
/// storm (<see cref="MqttBrokerOptions.HeapCompactAfterGrowth"/> false turns it off, and the one below).
/// <para>
/// The first idle trim of the process is that blocking, compacting collection instead of a background one. The regions
/// a collection frees stay resident until later collections give them back, and an idle process runs almost none: an
/// idle standalone broker kept 220–230 MiB of anonymous memory with 75–80 MiB of heap committed; after this collection,
/// 94–99 MiB (docs/benchmarks.md, "An idle broker's freed heap, given back"). It runs once, after a minute without a
/// full collection, when the start's garbage has died; the idle trims after it run in the background, so an idle heap
/// is not stopped for every minute.
/// </para>
/// Checked every <see cref="MqttBrokerOptions.HeapTrimInterval"/>; zero turns it off.
/// <para>
/// Once, when the host has started, it also runs one blocking, compacting collection that gives the free memory back
/// to the system (<see cref="GCCollectionMode.Aggressive"/>). Starting a silo allocates and drops about 200 MiB of
/// pinned buffers; an ordinary full collection frees them but the runtime keeps the memory resident, so the silo held
/// about 400 MiB before its first client (docs/benchmarks.md, "Idle memory at 50,000: the measure, the silo's start").
/// The pause comes right after the start, before a broker normally has clients.
/// </para>
/// </summary>
public sealed partial class HeapTrimmer : BackgroundService
{
    /// <summary>Growth below this is never worth a collection, and a smaller heap is never collected when idle.</summary>
    internal const long MinGrowthBytes = 32L << 20;

    /// <summary>Checks without a full collection after which an idle heap is collected (a minute at the default interval).</summary>
    internal const int IdleChecks = 12;

    /// <summary>The longest wait between idle collections, in checks (32 minutes at the default interval).</summary>
    internal const int MaxIdleChecks = 384;

    /// <summary>
    /// A process that allocated this much or more since the previous check is still busy (6.4 MiB/s at the default
    /// interval): a connect storm at 1,400 connects per second allocates 30–40 MiB/s in a silo, the minutes after it
    /// less than 5 MiB/s. The heap as the last collection left it is no sign of that by itself: a full collection of the
    /// runtime's own during a storm lowers it while the storm goes on.
    /// </summary>
    internal const long BusyAllocationBytes = MinGrowthBytes;

    // A started collection is waited for this many checks before the heap is judged again.
    private const int MaxWaits = 12;

    private readonly TimeSpan _interval;
    private readonly bool _compactAfterGrowth;
    private readonly MqttMetrics _metrics;
    private readonly ILogger<HeapTrimmer> _logger;
    private readonly IHostApplicationLifetime? _lifetime;
    private long _awaitedIndex = -1;
    private long _previousHeap = -1;
    private long _previousAllocated = -1;
    private long _baseline;
    private long _heapAtTrim;
    private long _lastFullIndex = -1;
    private int _checksSinceFull;
    private int _idleChecks = IdleChecks;
    private bool _trimWasIdle;
    private bool _idleCompacted;
    private int _waits;

    /// <summary>Creates the trimmer with the interval of <paramref name="options"/>, without the collection at start.</summary>
    public HeapTrimmer(IOptions<MqttBrokerOptions> options, MqttMetrics metrics, ILogger<HeapTrimmer> logger)
        : this(options, metrics, logger, lifetime: null)
    {
    }

    /// <summary>
    /// Creates the trimmer with the interval of <paramref name="options"/>; it compacts the heap once when
    /// <paramref name="lifetime"/> says the host has started.
    /// </summary>
    public HeapTrimmer(IOptions<MqttBrokerOptions> options, MqttMetrics metrics, ILogger<HeapTrimmer> logger, IHostApplicationLifetime? lifetime)
    {
        _interval = options.Value.HeapTrimInterval;
        _compactAfterGrowth = options.Value.HeapCompactAfterGrowth;
        _metrics = metrics;
        _logger = logger;
        _lifetime = lifetime;
    }

    /// <summary>The checks an idle heap now waits for, between <see cref="IdleChecks"/> and <see cref="MaxIdleChecks"/>.</summary>
    internal int IdleWait => _idleChecks;

    /// <summary>
    /// Whether a heap of <paramref name="heapBytes"/> (what the last collection of any generation left, dead objects of
    /// the older generations included) has grown past the <paramref name="baselineBytes"/> that the last trim left by a
    /// quarter of those, and by <see cref="MinGrowthBytes"/> at least, and by less than an eighth of that minimum since
    /// the previous check's <paramref name="previousHeapBytes"/> (negative before the first check: the heap may still
    /// be growing), while the process allocated less than <see cref="BusyAllocationBytes"/> since that check
    /// (<paramref name="allocatedSincePreviousBytes"/>; negative before the first check).
    /// </summary>
    internal static bool ShouldCollect(long heapBytes, long baselineBytes, long previousHeapBytes, long allocatedSincePreviousBytes) =>
        heapBytes - baselineBytes >= Math.Max(MinGrowthBytes, baselineBytes / 4) && IsQuiet(heapBytes, previousHeapBytes, allocatedSincePreviousBytes);

    /// <summary>
    /// Whether a collection that left <paramref name="heapBytes"/> in use and <paramref name="freeBytes"/> free has
    /// left enough free to be worth a compacting collection: a quarter of the heap with its free space, as much as a
    /// trim's growth needs, and <see cref="MinGrowthBytes"/> at least. The collections between a silo's trims left mostly a
    /// tenth or less free, at most 17 %; its trims' background collections 36–39 % (docs/benchmarks.md, "Idle memory at
    /// 50,000: when the trim runs").
    /// </summary>
    internal static bool ShouldCompact(long heapBytes, long freeBytes) =>
        freeBytes >= MinGrowthBytes && freeBytes >= (heapBytes + freeBytes) / 4;

    /// <summary>
    /// Takes one look at the heap: <paramref name="heapBytes"/> as the last collection left it, with
    /// <paramref name="freeBytes"/> more that it left free (fragmentation), the bytes the process has allocated since
    /// it started (<paramref name="allocatedBytes"/>) and the index of the newest full collection that has finished.
    /// The collection to start now, if any.
    /// </summary>
    internal HeapTrim Observe(long heapBytes, long freeBytes, long allocatedBytes, long newestFullIndex)
    {
        if (newestFullIndex != _lastFullIndex)
        {
            _lastFullIndex = newestFullIndex;
            _checksSinceFull = 0;
        }
        else
        {
            _checksSinceFull++;
        }

        if (_awaitedIndex >= 0)
        {
            if (newestFullIndex == _awaitedIndex && ++_waits < MaxWaits)
            {
                // The collection this started has not finished yet.
                return HeapTrim.None;
            }

            var finished = newestFullIndex != _awaitedIndex;
            _awaitedIndex = -1;
            _idleChecks = _trimWasIdle && _heapAtTrim - heapBytes < _heapAtTrim / 8 ? Math.Min(_idleChecks * 2, MaxIdleChecks) : IdleChecks;
            _baseline = heapBytes;
            if (finished && !_trimWasIdle && _compactAfterGrowth && ShouldCompact(heapBytes, freeBytes))
            {
                _previousHeap = heapBytes;
                _previousAllocated = allocatedBytes;
                return HeapTrim.Compacting;
            }
        }

        // A full collection of the runtime's own that freed the growth lowers the baseline with it.
        _baseline = Math.Min(_baseline, heapBytes);
        var previous = _previousHeap;
        var allocated = _previousAllocated < 0 ? -1 : allocatedBytes - _previousAllocated;
        _previousHeap = heapBytes;
        _previousAllocated = allocatedBytes;
        var grown = ShouldCollect(heapBytes, _baseline, previous, allocated);
        var idle = !grown && _checksSinceFull >= _idleChecks && heapBytes >= MinGrowthBytes && IsQuiet(heapBytes, previous, allocated);
        if (!grown && !idle)
        {
            return HeapTrim.None;
        }

        _trimWasIdle = idle;
        if (idle && _compactAfterGrowth && !_idleCompacted)
        {
            // Blocking: it has finished when the next look comes, which sees its index.
            _idleCompacted = true;
            return HeapTrim.Compacting;
        }

        _heapAtTrim = heapBytes;
        _awaitedIndex = newestFullIndex;
        _waits = 0;
        return HeapTrim.Background;
    }

    /// <summary>Looks at the heap once and starts the collection that <see cref="Observe"/> asks for, if any; which one it was.</summary>
    internal HeapTrim Check()
    {
        var last = GC.GetGCMemoryInfo(GCKind.Any);
        var heap = last.HeapSizeBytes - last.FragmentedBytes;
        var trim = Observe(heap, last.FragmentedBytes, GC.GetTotalAllocatedBytes(), NewestFullCollection());
        if (trim == HeapTrim.Background)
        {
            _metrics.HeapTrims.Add(1);
            LogTrimming(_logger, heap >> 20, _baseline >> 20, _trimWasIdle ? "idle" : "grown");
            GC.Collect(2, GCCollectionMode.Forced, blocking: false, compacting: false);
        }
        else if (trim == HeapTrim.Compacting)
        {
            _metrics.HeapTrims.Add(1);
            var started = Stopwatch.GetTimestamp();
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            var pause = Stopwatch.GetElapsedTime(started);
            var after = GC.GetGCMemoryInfo(GCKind.Any);
            LogCompacted(
                _logger,
                _trimWasIdle ? "when first idle" : "after a trim",
                last.FragmentedBytes >> 20,
                last.TotalCommittedBytes >> 20,
                after.HeapSizeBytes >> 20,
                after.TotalCommittedBytes >> 20,
                (long)pause.TotalMilliseconds);
        }

        return trim;
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

        if (_lifetime is not null)
        {
            await WhenStartedAsync(_lifetime.ApplicationStarted, stoppingToken).ConfigureAwait(false);
            if (stoppingToken.IsCancellationRequested)
            {
                return;
            }

            CompactAfterStart();
        }

        using var timer = new PeriodicTimer(_interval);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            Check();
        }
    }

    /// <summary>
    /// One blocking, compacting full collection that returns the free memory to the system: what starting the process
    /// allocated and dropped. Counted as a trim.
    /// </summary>
    internal void CompactAfterStart()
    {
        // The last collection's figures are those of its end, often long before now: what is allocated now, garbage
        // included, is the heap this collection starts from.
        var allocated = GC.GetTotalMemory(forceFullCollection: false);
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        var after = GC.GetGCMemoryInfo(GCKind.Any);
        _metrics.HeapTrims.Add(1);
        LogCompactedAfterStart(
            _logger, allocated >> 20, (after.HeapSizeBytes - after.FragmentedBytes) >> 20, after.FragmentedBytes >> 20, after.TotalCommittedBytes >> 20);
    }

    private static Task WhenStartedAsync(CancellationToken started, CancellationToken stopping)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var onStarted = started.Register(static s => ((TaskCompletionSource)s!).TrySetResult(), signal);
        var onStopping = stopping.Register(static s => ((TaskCompletionSource)s!).TrySetResult(), signal);
        return signal.Task.ContinueWith(
            _ =>
            {
                onStarted.Dispose();
                onStopping.Dispose();
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    // Grown by less than an eighth of the minimum growth since the previous look, and not busy allocating (negative:
    // there was no look yet).
    private static bool IsQuiet(long heapBytes, long previousHeapBytes, long allocatedSincePreviousBytes) =>
        previousHeapBytes >= 0 && heapBytes - previousHeapBytes < MinGrowthBytes / 8 &&
        allocatedSincePreviousBytes >= 0 && allocatedSincePreviousBytes < BusyAllocationBytes;

    // The index of the newest full collection that has finished, blocking or background.
    private static long NewestFullCollection() =>
        Math.Max(GC.GetGCMemoryInfo(GCKind.FullBlocking).Index, GC.GetGCMemoryInfo(GCKind.Background).Index);

    [LoggerMessage(Level = LogLevel.Information, Message = "Heap trimming is off: this process runs without background garbage collections (concurrent GC disabled)")]
    private static partial void LogNoBackgroundCollections(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Heap compacted after start: {AllocatedMiB} MiB allocated before; {LiveMiB} MiB in use, {FragmentedMiB} MiB free between pinned objects, {CommittedMiB} MiB committed after")]
    private static partial void LogCompactedAfterStart(ILogger logger, long allocatedMiB, long liveMiB, long fragmentedMiB, long committedMiB);

    [LoggerMessage(Level = LogLevel.Information, Message = "Heap compacted {Reason}: {FreeMiB} MiB free, {CommittedMiB} MiB committed before; {HeapAfterMiB} MiB heap, {CommittedAfterMiB} MiB committed after; every thread stopped for {PauseMs} ms")]
    private static partial void LogCompacted(ILogger logger, string reason, long freeMiB, long committedMiB, long heapAfterMiB, long committedAfterMiB, long pauseMs);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Heap at {HeapMiB} MiB, {BaselineMiB} MiB after the last trim ({Reason}): starting a background full collection")]
    private static partial void LogTrimming(ILogger logger, long heapMiB, long baselineMiB, string reason);
}
