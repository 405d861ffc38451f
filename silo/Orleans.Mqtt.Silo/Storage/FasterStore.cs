using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Numerics;
using FASTER.core;
using Microsoft.Extensions.Logging;
using Session = FASTER.core.ClientSession<
    FASTER.core.SpanByte,
    FASTER.core.SpanByte,
    FASTER.core.SpanByte,
    FASTER.core.SpanByteAndMemory,
    FASTER.core.Empty,
    FASTER.core.SpanByteFunctions<FASTER.core.Empty>>;

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
    private readonly SpanByteFunctions<Empty> _functions = new(MemoryPool<byte>.Shared);
    private readonly ConcurrentBag<Session> _sessions = new();
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

    /// <summary>Reads the record stored under <paramref name="key"/>, from memory or from disk.</summary>
    public async ValueTask<StoredRecord> ReadAsync(byte[] key, int keyLength)
    {
        var session = RentSession();
        var healthy = false;
        try
        {
            var result = await StartRead(session, key, keyLength).ConfigureAwait(false);
            var (status, output) = result.Complete();
            healthy = true;
            if (!status.Found)
            {
                output.Memory?.Dispose();
                return default;
            }

            return new StoredRecord(output.Memory, output.Length);
        }
        finally
        {
            ReturnSession(session, healthy);
        }
    }

    /// <summary>
    /// As <see cref="Upsert"/>, with at most one writer per core inside FASTER at a time. A write that finds the
    /// in-memory log full spins until older pages are flushed, and the flush completes on a thread-pool thread: with
    /// every pool thread spinning in a write, nothing completes the flush (seen with 64 concurrent writers on
    /// 2 cores). Waiting writers wait here without holding a thread.
    /// </summary>
    public async ValueTask UpsertAsync(byte[] key, int keyLength, long version, ReadOnlyMemory<byte> payload)
    {
        await _writers.WaitAsync().ConfigureAwait(false);
        try
        {
            Upsert(key, keyLength, version, payload.Span);
        }
        finally
        {
            _writers.Release();
        }
    }

    /// <summary>As <see cref="Delete"/>, with the writer limit of <see cref="UpsertAsync"/>.</summary>
    public async ValueTask DeleteAsync(byte[] key, int keyLength)
    {
        await _writers.WaitAsync().ConfigureAwait(false);
        try
        {
            Delete(key, keyLength);
        }
        finally
        {
            _writers.Release();
        }
    }

    /// <summary>Writes <paramref name="payload"/> with <paramref name="version"/> under <paramref name="key"/>, in memory.</summary>
    public void Upsert(byte[] key, int keyLength, long version, ReadOnlySpan<byte> payload)
    {
        var valueLength = VersionSize + payload.Length;
        if (keyLength + valueLength > _maxRecordSize)
        {
            throw new InvalidOperationException(
                $"A grain state of {payload.Length} bytes does not fit in one FASTER log page; the largest is about {_maxRecordSize - keyLength - VersionSize} bytes. Raise Storage:MemorySizeBytes.");
        }

        var buffer = ArrayPool<byte>.Shared.Rent(valueLength);
        try
        {
            Interlocked.Increment(ref _changesSinceFullCheckpoint);
            var value = StoredValue(buffer, version, payload);
            var keySpan = key.AsSpan(0, keyLength);
            var session = RentSession();
            var healthy = false;
            try
            {
                lock (Stripe(keySpan))
                {
                    UpsertCore(session, keySpan, value);
                    _log.AppendUpsert(keySpan, version, payload);
                }

                healthy = true;
            }
            finally
            {
                ReturnSession(session, healthy);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Deletes the record stored under <paramref name="key"/>, in memory.</summary>
    public void Delete(byte[] key, int keyLength)
    {
        Interlocked.Increment(ref _changesSinceFullCheckpoint);
        var keySpan = key.AsSpan(0, keyLength);
        var session = RentSession();
        var healthy = false;
        try
        {
            lock (Stripe(keySpan))
            {
                DeleteCore(session, keySpan);
                _log.AppendDelete(keySpan);
            }

            healthy = true;
        }
        finally
        {
            ReturnSession(session, healthy);
        }
    }

    /// <summary>Calls <paramref name="visit"/> with the key, version and payload of every live record.</summary>
    public void ForEach(RecordVisitor visit)
    {
        var session = RentSession();
        var healthy = false;
        try
        {
            using (var iterator = session.Iterate())
            {
                while (iterator.GetNext(out _))
                {
                    var value = iterator.GetValue().AsReadOnlySpan();
                    visit(iterator.GetKey().AsReadOnlySpan(), BinaryPrimitives.ReadInt64LittleEndian(value), value[VersionSize..]);
                }
            }

            healthy = true;
        }
        finally
        {
            ReturnSession(session, healthy);
        }
    }

    /// <summary>
    /// Completes once a commit that started after this call has been written, so every change applied
    /// before the call is on disk.
    /// </summary>
    public Task WaitForCommitAsync()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            _pendingBatch ??= new CommitBatch();
            _pendingBatch.Count++;
            _wake.TrySetResult();
            return _pendingBatch.Completion.Task;
        }
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
            batch?.Completion.TrySetException(exception);
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
        batch?.Completion.TrySetException(new ObjectDisposedException(nameof(FasterStore)));
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

    private static unsafe ValueTask<FasterKV<SpanByte, SpanByte>.ReadAsyncResult<SpanByte, SpanByteAndMemory, Empty>> StartRead(
        Session session, byte[] key, int keyLength)
    {
        // The key only has to stay pinned while the call runs: a read that goes pending copies it.
        fixed (byte* keyPointer = key)
        {
            var keySpan = SpanByte.FromPointer(keyPointer, keyLength);
            return session.ReadAsync(ref keySpan);
        }
    }

    private static unsafe void UpsertCore(Session session, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        fixed (byte* keyPointer = key)
        fixed (byte* valuePointer = value)
        {
            var keySpan = SpanByte.FromPointer(keyPointer, key.Length);
            var valueSpan = SpanByte.FromPointer(valuePointer, value.Length);
            var status = session.Upsert(ref keySpan, ref valueSpan);
            if (status.IsPending)
            {
                session.CompletePending(wait: true);
            }
        }
    }

    private static unsafe void DeleteCore(Session session, ReadOnlySpan<byte> key)
    {
        fixed (byte* keyPointer = key)
        {
            var keySpan = SpanByte.FromPointer(keyPointer, key.Length);
            var status = session.Delete(ref keySpan);
            if (status.IsPending)
            {
                session.CompletePending(wait: true);
            }
        }
    }

    private static TaskCompletionSource NewCompletionSource() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A value as the store holds it, written into <paramref name="buffer"/>: the version, then the payload.</summary>
    private static ReadOnlySpan<byte> StoredValue(byte[] buffer, long version, ReadOnlySpan<byte> payload)
    {
        BinaryPrimitives.WriteInt64LittleEndian(buffer, version);
        payload.CopyTo(buffer.AsSpan(VersionSize));
        return buffer.AsSpan(0, VersionSize + payload.Length);
    }

    private Lock Stripe(ReadOnlySpan<byte> key) => _stripes[WriteAheadLog.Checksum(key) & (Stripes - 1)];

    /// <summary>Applies the write-ahead log's records to the recovered (or empty) store; returns how many.</summary>
    private long ReplayLog()
    {
        var session = RentSession();
        var buffer = new byte[256];
        try
        {
            var replayed = _log.Replay((operation, key, version, payload) =>
            {
                if (operation == WalOperation.Delete)
                {
                    DeleteCore(session, key);
                    return;
                }

                if (buffer.Length < VersionSize + payload.Length)
                {
                    buffer = new byte[BitOperations.RoundUpToPowerOf2((uint)(VersionSize + payload.Length))];
                }

                UpsertCore(session, key, StoredValue(buffer, version, payload));
            });
            Interlocked.Add(ref _changesSinceFullCheckpoint, replayed);
            return replayed;
        }
        finally
        {
            ReturnSession(session, healthy: true);
        }
    }

    private Session RentSession()
    {
        var store = _store ?? throw new InvalidOperationException("The grain storage is not open.");
        return _sessions.TryTake(out var session)
            ? session
            : store.For(_functions).NewSession<SpanByteFunctions<Empty>>();
    }

    private void ReturnSession(Session session, bool healthy)
    {
        // A session whose operation threw may hold pending work; do not hand it to another caller.
        if (healthy)
        {
            _sessions.Add(session);
        }
        else
        {
            session.Dispose();
        }
    }

    private void OnFullCheckpointDue()
    {
        lock (_gate)
        {
            _fullCheckpointDue = true;
            _wake.TrySetResult();
        }
    }

    private async Task RunCommitLoopAsync(CancellationToken stop)
    {
        try
        {
            while (true)
            {
                Task wake;
                lock (_gate)
                {
                    if (_pendingBatch is null && !(_fullCheckpointDue && _checkpoint.IsCompleted))
                    {
                        if (_wake.Task.IsCompleted)
                        {
                            _wake = NewCompletionSource();
                        }

                        wake = _wake.Task;
                    }
                    else
                    {
                        wake = Task.CompletedTask;
                    }
                }

                await wake.WaitAsync(stop).ConfigureAwait(false);

                var sinceLastCommit = _timeProvider.GetElapsedTime(_lastCommitStart);
                if (sinceLastCommit < _options.CommitInterval)
                {
                    await Task.Delay(_options.CommitInterval - sinceLastCommit, _timeProvider, stop).ConfigureAwait(false);
                }

                CommitBatch? batch;
                bool full;
                lock (_gate)
                {
                    batch = _pendingBatch;
                    _pendingBatch = null;

                    // One full checkpoint at a time; commits go on while it is written.
                    full = _fullCheckpointDue && _checkpoint.IsCompleted;
                    _fullCheckpointDue &= !full;
                }

                _lastCommitStart = _timeProvider.GetTimestamp();
                try
                {
                    if (full)
                    {
                        _checkpoint = FullCheckpointAsync(batch);
                        _ = _checkpoint.ContinueWith(
                            static (checkpoint, state) => ((FasterStore)state!).OnCheckpointEnded(checkpoint),
                            this,
                            CancellationToken.None,
                            TaskContinuationOptions.ExecuteSynchronously,
                            TaskScheduler.Default);
                    }
                    else if (batch is not null)
                    {
                        Commit(batch);
                    }
                }
                catch (Exception exception)
                {
                    LogCheckpointFailed(_logger, exception, _directory);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Closing.
        }
    }

    private void OnCheckpointEnded(Task checkpoint)
    {
        if (checkpoint.Exception is { } exception)
        {
            LogCheckpointFailed(_logger, exception.GetBaseException(), _directory);
        }

        lock (_gate)
        {
            _wake.TrySetResult();
        }
    }

    /// <summary>Writes and syncs the write-ahead log, then completes the batch; asks for a full checkpoint when the log is long.</summary>
    private void Commit(CommitBatch batch)
    {
        var started = _timeProvider.GetTimestamp();
        try
        {
            _log.Flush();
        }
        catch (Exception exception)
        {
            batch.Completion.TrySetException(exception);
            throw;
        }

        var elapsed = _timeProvider.GetElapsedTime(started);
        Interlocked.Increment(ref _commitCount);
        batch.Completion.TrySetResult();
        LogCommitted(_logger, batch.Count, elapsed.TotalMilliseconds);
        if (_log.SegmentLength >= _logBytesBeforeCheckpoint)
        {
            OnFullCheckpointDue();
        }
    }

    /// <summary>
    /// Cuts the write-ahead log (which makes <paramref name="batch"/> durable and completes it), takes a full
    /// checkpoint and deletes the log segments before the cut. Skipped when nothing changed since the last one,
    /// unless <paramref name="force"/>d or someone waits.
    /// </summary>
    private async Task FullCheckpointAsync(CommitBatch? batch, bool force = false)
    {
        var store = _store!;

        // Changes made from here on may or may not make it into this checkpoint, so they count for the next one.
        if (Interlocked.Exchange(ref _changesSinceFullCheckpoint, 0) == 0 && batch is null && !force)
        {
            return;
        }

        var started = _timeProvider.GetTimestamp();
        long cut;
        try
        {
            // Every change applied before this point is in the log before the cut and in the checkpoint; a change
            // applied after it is in the log after the cut (it may be in the checkpoint too: replaying it is harmless).
            cut = _log.Cut();
        }
        catch (Exception exception)
        {
            Interlocked.Increment(ref _changesSinceFullCheckpoint);
            batch?.Completion.TrySetException(exception);
            throw;
        }

        batch?.Completion.TrySetResult();
        var tail = store.Log.TailAddress;
        while (true)
        {
            (bool success, Guid token) result;
            try
            {
                result = await store.TakeFullCheckpointAsync(CheckpointType.Snapshot).ConfigureAwait(false);
            }
            catch
            {
                Interlocked.Increment(ref _changesSinceFullCheckpoint);
                throw;
            }

            var (success, token) = result;
            if (success)
            {
                _log.DeleteBefore(cut);
                var elapsed = _timeProvider.GetElapsedTime(started);
                Interlocked.Increment(ref _commitCount);
                Interlocked.Increment(ref _fullCheckpointCount);
                LogFullCheckpoint(_logger, token, store.CurrentVersion, tail, elapsed.TotalMilliseconds);
                return;
            }

            await store.CompleteCheckpointAsync().ConfigureAwait(false);
        }
    }

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
        while (_sessions.TryTake(out var session))
        {
            session.Dispose();
        }

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

    private sealed class CommitBatch
    {
        public TaskCompletionSource Completion { get; } = NewCompletionSource();

        public int Count { get; set; }
    }
}

/// <summary>Receives one record of <see cref="FasterStore.ForEach"/>; the spans are valid during the call only.</summary>
internal delegate void RecordVisitor(ReadOnlySpan<byte> key, long version, ReadOnlySpan<byte> payload);

/// <summary>A record read from <see cref="FasterStore"/>: the version and payload in a pooled buffer.</summary>
internal readonly struct StoredRecord : IDisposable
{
    private readonly IMemoryOwner<byte>? _owner;
    private readonly int _length;

    public StoredRecord(IMemoryOwner<byte>? owner, int length)
    {
        _owner = owner;
        _length = length;
    }

    /// <summary>Whether a record was found.</summary>
    public bool Found => _owner is not null;

    /// <summary>The version stored with the record.</summary>
    public long Version => BinaryPrimitives.ReadInt64LittleEndian(_owner!.Memory.Span);

    /// <summary>The stored payload; valid until the record is disposed.</summary>
    public ReadOnlyMemory<byte> Payload => _owner!.Memory[sizeof(long).._length];

    /// <inheritdoc />
    public void Dispose() => _owner?.Dispose();
}
