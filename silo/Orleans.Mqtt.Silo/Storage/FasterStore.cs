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
/// memory, then await <see cref="WaitForCommitAsync"/>; one background loop takes hybrid-log snapshot
/// checkpoints back to back while anyone waits, so concurrent writers share a checkpoint.
/// </summary>
/// <remarks>
/// Values are stored as an 8-byte little-endian version followed by the payload. FASTER sessions are
/// single-threaded, so each operation rents a session from a pool and returns it when done.
/// </remarks>
internal sealed partial class FasterStore : IAsyncDisposable
{
    private const int VersionSize = sizeof(long);

    // Room FASTER needs in a page besides key and value: record header plus two length prefixes and alignment.
    private const int RecordOverhead = 64;

    private readonly SemaphoreSlim _writers = new(Environment.ProcessorCount);
    private readonly string _directory;
    private readonly FasterStorageOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly SpanByteFunctions<Empty> _functions = new(MemoryPool<byte>.Shared);
    private readonly ConcurrentBag<Session> _sessions = new();
    private readonly CancellationTokenSource _stopLoop = new();
    private readonly Lock _gate = new();

    private IDevice? _logDevice;
    private FasterKV<SpanByte, SpanByte>? _store;
    private ITimer? _fullCheckpointTimer;
    private Task _commitLoop = Task.CompletedTask;
    private int _maxRecordSize;

    // Guarded by _gate.
    private CommitBatch? _pendingBatch;
    private TaskCompletionSource _wake = NewCompletionSource();
    private bool _fullCheckpointDue;
    private bool _closed;

    // Touched by the commit loop only (and by CloseAsync after the loop has ended).
    private long _lastCommitStart;
    private long _commitCount;
    private long _commitTicks;

    // Upserts and deletes since the last full checkpoint began; an idle store skips the periodic one.
    private long _changesSinceFullCheckpoint;

    public FasterStore(string directory, FasterStorageOptions options, TimeProvider timeProvider, ILogger logger)
    {
        _directory = directory;
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <summary>Number of commit checkpoints taken so far (log-only and full).</summary>
    internal long CommitCount => Interlocked.Read(ref _commitCount);

    /// <summary>Total time spent in commit checkpoints so far.</summary>
    internal TimeSpan CommitTime => TimeSpan.FromTicks(Interlocked.Read(ref _commitTicks));

    /// <summary>
    /// Opens the store: recovers from the latest index and log checkpoints when there are any, otherwise starts
    /// empty and takes a first full checkpoint; then starts the commit loop.
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
        var pageBits = Math.Clamp(memoryBits - 4, 16, _options.MaxPageSizeBits);
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
            // Combines the latest index checkpoint with the latest (possibly incremental) log checkpoint and
            // undoes whatever the log holds beyond that checkpoint's version.
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
            await FullCheckpointAsync(force: true).ConfigureAwait(false);
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

        var value = ArrayPool<byte>.Shared.Rent(valueLength);
        try
        {
            BinaryPrimitives.WriteInt64LittleEndian(value, version);
            Interlocked.Increment(ref _changesSinceFullCheckpoint);
            payload.CopyTo(value.AsSpan(VersionSize));
            var session = RentSession();
            var healthy = false;
            try
            {
                UpsertCore(session, key, keyLength, value, valueLength);
                healthy = true;
            }
            finally
            {
                ReturnSession(session, healthy);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(value);
        }
    }

    /// <summary>Deletes the record stored under <paramref name="key"/>, in memory.</summary>
    public void Delete(byte[] key, int keyLength)
    {
        Interlocked.Increment(ref _changesSinceFullCheckpoint);
        var session = RentSession();
        var healthy = false;
        try
        {
            DeleteCore(session, key, keyLength);
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
    /// Completes once a checkpoint that started after this call has been written, so every change applied
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
                await FullCheckpointAsync(force: batch is not null).ConfigureAwait(false);
                LogClosed(_logger, _directory, _store.Log.TailAddress);
            }

            batch?.Completion.TrySetResult();
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

    private static unsafe void UpsertCore(Session session, byte[] key, int keyLength, byte[] value, int valueLength)
    {
        fixed (byte* keyPointer = key)
        fixed (byte* valuePointer = value)
        {
            var keySpan = SpanByte.FromPointer(keyPointer, keyLength);
            var valueSpan = SpanByte.FromPointer(valuePointer, valueLength);
            var status = session.Upsert(ref keySpan, ref valueSpan);
            if (status.IsPending)
            {
                session.CompletePending(wait: true);
            }
        }
    }

    private static unsafe void DeleteCore(Session session, byte[] key, int keyLength)
    {
        fixed (byte* keyPointer = key)
        {
            var keySpan = SpanByte.FromPointer(keyPointer, keyLength);
            var status = session.Delete(ref keySpan);
            if (status.IsPending)
            {
                session.CompletePending(wait: true);
            }
        }
    }

    private static TaskCompletionSource NewCompletionSource() => new(TaskCreationOptions.RunContinuationsAsynchronously);

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
                    if (_pendingBatch is null && !_fullCheckpointDue)
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
                    full = _fullCheckpointDue;
                    _fullCheckpointDue = false;
                }

                _lastCommitStart = _timeProvider.GetTimestamp();
                try
                {
                    // The checkpoint itself is never cancelled: stopping waits for the one in progress.
                    if (full)
                    {
                        await FullCheckpointAsync(force: batch is not null).ConfigureAwait(false);
                    }
                    else if (batch is not null)
                    {
                        await CommitAsync(batch.Count).ConfigureAwait(false);
                    }

                    batch?.Completion.TrySetResult();
                }
                catch (Exception exception)
                {
                    LogCheckpointFailed(_logger, exception, _directory);
                    batch?.Completion.TrySetException(exception);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Closing.
        }
    }

    private async Task CommitAsync(int waiters)
    {
        var store = _store!;
        var started = _timeProvider.GetTimestamp();
        while (true)
        {
            // Snapshot rather than fold-over: fold-over makes the whole log read-only at every commit, so each
            // update would copy its record to the tail. Incremental: only records changed since the last
            // snapshot are appended to the snapshot's delta log.
            var (success, token) = await store.TakeHybridLogCheckpointAsync(CheckpointType.Snapshot, tryIncremental: true).ConfigureAwait(false);
            if (success)
            {
                var elapsed = _timeProvider.GetElapsedTime(started);
                RecordCommit(elapsed);
                LogCommitted(_logger, token, store.CurrentVersion, waiters, elapsed.TotalMilliseconds);
                return;
            }

            // Another checkpoint state machine is running; wait for it and take ours after it.
            await store.CompleteCheckpointAsync().ConfigureAwait(false);
        }
    }

    private async Task FullCheckpointAsync(bool force)
    {
        var store = _store!;

        // Changes made from here on may or may not make it into this checkpoint, so they count for the next one.
        if (Interlocked.Exchange(ref _changesSinceFullCheckpoint, 0) == 0 && !force)
        {
            return;
        }

        var tail = store.Log.TailAddress;

        var started = _timeProvider.GetTimestamp();
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
                var elapsed = _timeProvider.GetElapsedTime(started);
                RecordCommit(elapsed);
                LogFullCheckpoint(_logger, token, store.CurrentVersion, tail, elapsed.TotalMilliseconds);
                return;
            }

            await store.CompleteCheckpointAsync().ConfigureAwait(false);
        }
    }

    private void RecordCommit(TimeSpan elapsed)
    {
        Interlocked.Increment(ref _commitCount);
        Interlocked.Add(ref _commitTicks, elapsed.Ticks);
    }

    private async Task StopCommitLoopAsync()
    {
        _stopLoop.Cancel();
        await _commitLoop.ConfigureAwait(false);
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
        _logDevice?.Dispose();
        _logDevice = null;
        _stopLoop.Dispose();
    }

    [LoggerMessage(1, LogLevel.Information, "Grain storage in {Directory} recovered to version {Version} from index checkpoint {IndexToken} and log checkpoint {LogToken}; log tail {TailAddress}; took {ElapsedMs:F1} ms")]
    private static partial void LogRecovered(ILogger logger, string directory, long version, Guid indexToken, Guid logToken, long tailAddress, double elapsedMs);

    [LoggerMessage(2, LogLevel.Information, "Grain storage in {Directory} has no checkpoint; starting empty")]
    private static partial void LogStartingEmpty(ILogger logger, string directory);

    [LoggerMessage(3, LogLevel.Trace, "Commit checkpoint {Token} (version {Version}) covered {Waiters} writes in {ElapsedMs:F2} ms")]
    private static partial void LogCommitted(ILogger logger, Guid token, long version, int waiters, double elapsedMs);

    [LoggerMessage(4, LogLevel.Debug, "Full checkpoint {Token} (version {Version}, log tail {TailAddress}) took {ElapsedMs:F1} ms")]
    private static partial void LogFullCheckpoint(ILogger logger, Guid token, long version, long tailAddress, double elapsedMs);

    [LoggerMessage(5, LogLevel.Error, "Checkpoint of grain storage in {Directory} failed; waiting writes fail and the next commit retries")]
    private static partial void LogCheckpointFailed(ILogger logger, Exception exception, string directory);

    [LoggerMessage(6, LogLevel.Information, "Grain storage in {Directory} closed after a final checkpoint; log tail {TailAddress}")]
    private static partial void LogClosed(ILogger logger, string directory, long tailAddress);

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
