using System.Numerics;
using FASTER.core;
using Microsoft.Extensions.Logging;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>
/// A FASTER KV store on local disk whose changes become durable by group commit: callers apply a change in
/// memory (which also appends it to a <see cref="WriteAheadLog"/>), then await <see cref="WaitForCommitAsync"/>;
/// one background loop writes and syncs the log while anyone waits, so concurrent writers share one sync.
/// </summary>
/// <remarks>
/// <para>
/// A full FASTER checkpoint (hash index and a snapshot of the log) is taken periodically; it cuts the write-ahead
/// log first, and the segments before the cut are deleted once the checkpoint is written. Recovery loads the
/// latest checkpoint and replays the segments left. Every change is a whole value (or a delete), applied to FASTER
/// and appended to the log under one lock per key stripe, so each key's changes are in the log in the order they
/// were applied, and replaying changes the checkpoint already holds leaves the same state.
/// </para>
/// <para>
/// Values are stored as an 8-byte little-endian version followed by the payload. FASTER sessions are
/// single-threaded, so each operation rents a session from a pool and returns it when done.
/// </para>
/// </remarks>
internal sealed partial class FasterStore : IAsyncDisposable
{
    private const int VersionSize = sizeof(long);

    // Room FASTER needs in a page besides key and value: record header plus two length prefixes and alignment.
    private const int RecordOverhead = 64;

    // Locks that keep a key's change in FASTER and in the write-ahead log in the same order (a power of two).
    private const int Stripes = 64;

    // The write-ahead log grows to at least this much before it forces a full checkpoint ahead of the interval.
    private const long MinLogBytesBeforeCheckpoint = 64L * 1024 * 1024;

    private readonly SemaphoreSlim _writers = new(Environment.ProcessorCount);
    private readonly string _directory;
    private readonly FasterStorageOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopLoop = new();
    private readonly Lock _gate = new();
    private readonly Lock[] _stripes = Enumerable.Range(0, Stripes).Select(_ => new Lock()).ToArray();
    private readonly WriteAheadLog _log;
    private readonly long _logBytesBeforeCheckpoint;

    private IDevice? _logDevice;
    private FasterKV<SpanByte, SpanByte>? _store;
    private ITimer? _fullCheckpointTimer;
    private Task _commitLoop = Task.CompletedTask;

    // The full checkpoint being written, if any (started by the commit loop, which runs the next after it ends).
    private Task _checkpoint = Task.CompletedTask;
    private int _maxRecordSize;

    // Guarded by _gate.
    private CommitBatch? _pendingBatch;
    private TaskCompletionSource _wake = NewCompletionSource();
    private bool _fullCheckpointDue;
    private bool _closed;

    // Touched by the commit loop only (and by CloseAsync after the loop has ended).
    private long _lastCommitStart;
    private long _commitCount;
    private long _fullCheckpointCount;

    // Upserts and deletes since the last full checkpoint began; an idle store skips the periodic one.
    private long _changesSinceFullCheckpoint;

    public FasterStore(string directory, FasterStorageOptions options, TimeProvider timeProvider, ILogger logger)
    {
        _directory = directory;
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
        _log = new WriteAheadLog(Path.Combine(directory, "wal"), logger);
        _logBytesBeforeCheckpoint = Math.Max(options.MemorySizeBytes, MinLogBytesBeforeCheckpoint);
    }

    /// <summary>Number of commits so far (write-ahead log syncs and full checkpoints).</summary>
    internal long CommitCount => Interlocked.Read(ref _commitCount);

    /// <summary>Number of full checkpoints written so far.</summary>
    internal long FullCheckpointCount => Interlocked.Read(ref _fullCheckpointCount);

    /// <summary>
    /// Opens the store: recovers from the latest checkpoint when there is one, otherwise starts empty; replays the
    /// write-ahead log; takes a full checkpoint when it started empty or replayed anything; then starts the commit loop.
    /// </summary>
    public async Task OpenAsync(CancellationToken cancellationToken)
    {
        try
        {
            await OpenCoreAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            lock (_gate)
            {
                _closed = true;
            }

            ReleaseResources();
            throw;
        }
    }

    private async Task OpenCoreAsync(CancellationToken cancellationToken)
    {
        var started = _timeProvider.GetTimestamp();
        var logDirectory = Path.Combine(_directory, "log");
        var checkpointDirectory = Path.Combine(_directory, "checkpoints");
        Directory.CreateDirectory(logDirectory);
        Directory.CreateDirectory(checkpointDirectory);

        var memoryBits = BitOperations.Log2((ulong)_options.MemorySizeBytes);
        var pageBits = Math.Clamp(memoryBits - 4, 16, 22);
        _maxRecordSize = (1 << pageBits) - RecordOverhead;

        // recoverDevice: the device must discover the log segments already on disk.
        _logDevice = Devices.CreateLogDevice(Path.Combine(logDirectory, "hlog.log"), recoverDevice: true);
        _store = new FasterKV<SpanByte, SpanByte>(
            _options.IndexBuckets,
            new LogSettings
            {
                LogDevice = _logDevice,
                MemorySizeBits = memoryBits,
                PageSizeBits = pageBits,
                SegmentSizeBits = 30,
            },
            new CheckpointSettings { CheckpointDir = checkpointDirectory, RemoveOutdated = true });

        _store.GetLatestCheckpointTokens(out var logToken, out var indexToken);
        if (logToken != Guid.Empty)
        {
            // Loads the latest full checkpoint (index and log snapshot) and undoes whatever the log holds beyond its
            // version; replaying the write-ahead log below brings back every change made after the checkpoint began.
            var version = await _store.RecoverAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            LogRecovered(_logger, _directory, version, indexToken, logToken, _store.Log.TailAddress, _timeProvider.GetElapsedTime(started).TotalMilliseconds);
        }
        else
        {
            if (Directory.EnumerateFileSystemEntries(checkpointDirectory).Any(e => Directory.EnumerateFileSystemEntries(e).Any()))
            {
                throw new InvalidOperationException(
                    $"The grain storage directory '{_directory}' holds checkpoint files but no recoverable checkpoint. Move it away to start empty.");
            }

            LogStartingEmpty(_logger, _directory);
        }

        var replayStarted = _timeProvider.GetTimestamp();
        var replayed = ReplayLog();
        if (replayed > 0)
        {
            LogReplayed(_logger, _directory, replayed, _timeProvider.GetElapsedTime(replayStarted).TotalMilliseconds);
        }

        _log.StartSegment();
        if (logToken == Guid.Empty || replayed > 0)
        {
            // Starts the next recovery from here, and lets the replayed segments go.
            await FullCheckpointAsync(batch: null, force: true).ConfigureAwait(false);
        }

        _fullCheckpointTimer = _timeProvider.CreateTimer(
            static state => ((FasterStore)state!).OnFullCheckpointDue(),
            this,
            _options.IndexCheckpointInterval,
            _options.IndexCheckpointInterval);
        _commitLoop = Task.Run(() => RunCommitLoopAsync(_stopLoop.Token), CancellationToken.None);
    }

    /// <summary>Graceful close: stops the commit loop, takes a final full checkpoint and releases the files.</summary>
    public async Task CloseAsync()
    {
        if (!TryBeginClose(out var batch))
        {
            return;
        }

        await StopCommitLoopAsync().ConfigureAwait(false);
        try
        {
            if (_store is not null)
            {
                await FullCheckpointAsync(batch).ConfigureAwait(false);
                LogClosed(_logger, _directory, _store.Log.TailAddress);
            }
        }
        catch (Exception exception)
        {
            batch?.Fail(exception);
            throw;
        }
        finally
        {
            ReleaseResources();
        }
    }

    /// <summary>
    /// Releases the files without a final checkpoint, as a crash would: only what earlier commits wrote
    /// survives. Use <see cref="CloseAsync"/> for a graceful close.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (!TryBeginClose(out var batch))
        {
            return;
        }

        await StopCommitLoopAsync().ConfigureAwait(false);
        batch?.Fail(new ObjectDisposedException(nameof(FasterStore)));
        ReleaseResources();
    }

    /// <summary>Marks the store closed (once) and takes the writers still waiting for a commit.</summary>
    private bool TryBeginClose(out CommitBatch? waiting)
    {
        lock (_gate)
        {
            waiting = null;
            if (_closed)
            {
                return false;
            }

            _closed = true;
            waiting = _pendingBatch;
            _pendingBatch = null;
            return true;
        }
    }

    private static TaskCompletionSource NewCompletionSource() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private async Task StopCommitLoopAsync()
    {
        _stopLoop.Cancel();
        await _commitLoop.ConfigureAwait(false);

        // A failed one was logged when it ended; closing goes on.
        await _checkpoint.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);

        _fullCheckpointTimer?.Dispose();
    }

    private void ReleaseResources()
    {
        DisposeSessions();

        // Later calls find no store and throw instead of touching freed native memory.
        var store = _store;
        _store = null;
        store?.Dispose();
        _log.Dispose();
        _logDevice?.Dispose();
        _logDevice = null;
        _stopLoop.Dispose();
    }

    [LoggerMessage(1, LogLevel.Information, "Grain storage in {Directory} recovered to version {Version} from index checkpoint {IndexToken} and log checkpoint {LogToken}; log tail {TailAddress}; took {ElapsedMs:F1} ms")]
    private static partial void LogRecovered(ILogger logger, string directory, long version, Guid indexToken, Guid logToken, long tailAddress, double elapsedMs);

    [LoggerMessage(2, LogLevel.Information, "Grain storage in {Directory} has no checkpoint; starting empty")]
    private static partial void LogStartingEmpty(ILogger logger, string directory);

    [LoggerMessage(3, LogLevel.Trace, "Write-ahead log commit covered {Waiters} writes in {ElapsedMs:F2} ms")]
    private static partial void LogCommitted(ILogger logger, int waiters, double elapsedMs);

    [LoggerMessage(4, LogLevel.Debug, "Full checkpoint {Token} (version {Version}, log tail {TailAddress}) took {ElapsedMs:F1} ms")]
    private static partial void LogFullCheckpoint(ILogger logger, Guid token, long version, long tailAddress, double elapsedMs);

    [LoggerMessage(5, LogLevel.Error, "Commit or checkpoint of grain storage in {Directory} failed; waiting writes fail and the next commit retries")]
    private static partial void LogCheckpointFailed(ILogger logger, Exception exception, string directory);

    [LoggerMessage(6, LogLevel.Information, "Grain storage in {Directory} closed after a final checkpoint; log tail {TailAddress}")]
    private static partial void LogClosed(ILogger logger, string directory, long tailAddress);

    [LoggerMessage(7, LogLevel.Information, "Grain storage in {Directory} replayed {Records} write-ahead log records in {ElapsedMs:F1} ms")]
    private static partial void LogReplayed(ILogger logger, string directory, long records, double elapsedMs);
}
