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
/// Waiting for the heap to stop growing starts it after a storm rather than during it, when the CPU is needed
/// elsewhere.</item>
/// <item>When idle: no full collection for <see cref="IdleChecks"/> checks. What dies without new allocations, such
/// as the sessions that leave a silo's memory when idle, does not grow the heap. A trim that frees less than an
/// eighth of the heap doubles this wait, up to <see cref="MaxIdleChecks"/> checks, so an idle process with nothing to
/// free is not collected every minute.</item>
/// </list>
/// The background collection runs beside the broker's threads and does not compact. Checked every
/// <see cref="MqttBrokerOptions.HeapTrimInterval"/>; zero turns it off.
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

    // A started collection is waited for this many checks before the heap is judged again.
    private const int MaxWaits = 12;

    private readonly TimeSpan _interval;
    private readonly MqttMetrics _metrics;
    private readonly ILogger<HeapTrimmer> _logger;
    private readonly IHostApplicationLifetime? _lifetime;
    private long _awaitedIndex = -1;
    private long _previousHeap = -1;
    private long _baseline;
    private long _heapAtTrim;
    private long _lastFullIndex = -1;
    private int _checksSinceFull;
    private int _idleChecks = IdleChecks;
    private bool _trimWasIdle;
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
    /// be growing).
    /// </summary>
    internal static bool ShouldCollect(long heapBytes, long baselineBytes, long previousHeapBytes) =>
        heapBytes - baselineBytes >= Math.Max(MinGrowthBytes, baselineBytes / 4) && IsQuiet(heapBytes, previousHeapBytes);

    /// <summary>
    /// Takes one look at the heap: <paramref name="heapBytes"/> as the last collection left it and the index of the
    /// newest full collection that has finished. True when a trim should start now.
    /// </summary>
    internal bool Observe(long heapBytes, long newestFullIndex)
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
                return false;
            }

            _awaitedIndex = -1;
            _idleChecks = _trimWasIdle && _heapAtTrim - heapBytes < _heapAtTrim / 8 ? Math.Min(_idleChecks * 2, MaxIdleChecks) : IdleChecks;
            _baseline = heapBytes;
        }

        // A full collection of the runtime's own that freed the growth lowers the baseline with it.
        _baseline = Math.Min(_baseline, heapBytes);
        var previous = _previousHeap;
        _previousHeap = heapBytes;
        var grown = ShouldCollect(heapBytes, _baseline, previous);
        var idle = !grown && _checksSinceFull >= _idleChecks && heapBytes >= MinGrowthBytes && IsQuiet(heapBytes, previous);
        if (!grown && !idle)
        {
            return false;
        }

        _trimWasIdle = idle;
        _heapAtTrim = heapBytes;
        _awaitedIndex = newestFullIndex;
        _waits = 0;
        return true;
    }

    /// <summary>Looks at the heap once and starts a background full collection if <see cref="Observe"/> says so; true if it did.</summary>
    internal bool Check()
    {
        var last = GC.GetGCMemoryInfo(GCKind.Any);
        var heap = last.HeapSizeBytes - last.FragmentedBytes;
        if (!Observe(heap, NewestFullCollection()))
        {
            return false;
        }

        _metrics.HeapTrims.Add(1);
        LogTrimming(_logger, heap >> 20, _baseline >> 20, _trimWasIdle ? "idle" : "grown");
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
        var before = GC.GetGCMemoryInfo(GCKind.Any);
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        var after = GC.GetGCMemoryInfo(GCKind.Any);
        _metrics.HeapTrims.Add(1);
        LogCompactedAfterStart(_logger, before.HeapSizeBytes >> 20, before.TotalCommittedBytes >> 20, after.HeapSizeBytes >> 20, after.TotalCommittedBytes >> 20);
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

    // Grown by less than an eighth of the minimum growth since the previous look (negative: there was none yet).
    private static bool IsQuiet(long heapBytes, long previousHeapBytes) => previousHeapBytes >= 0 && heapBytes - previousHeapBytes < MinGrowthBytes / 8;

    // The index of the newest full collection that has finished, blocking or background.
    private static long NewestFullCollection() =>
        Math.Max(GC.GetGCMemoryInfo(GCKind.FullBlocking).Index, GC.GetGCMemoryInfo(GCKind.Background).Index);

    [LoggerMessage(Level = LogLevel.Information, Message = "Heap trimming is off: this process runs without background garbage collections (concurrent GC disabled)")]
    private static partial void LogNoBackgroundCollections(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Heap compacted after start: {HeapMiB} MiB heap, {CommittedMiB} MiB committed before; {HeapAfterMiB} MiB, {CommittedAfterMiB} MiB after")]
    private static partial void LogCompactedAfterStart(ILogger logger, long heapMiB, long committedMiB, long heapAfterMiB, long committedAfterMiB);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Heap at {HeapMiB} MiB, {BaselineMiB} MiB after the last trim ({Reason}): starting a background full collection")]
    private static partial void LogTrimming(ILogger logger, long heapMiB, long baselineMiB, string reason);
}
