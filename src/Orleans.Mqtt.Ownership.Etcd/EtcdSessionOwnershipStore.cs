using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Etcd;

namespace Orleans.Mqtt.Ownership.Etcd;

/// <summary>
/// Session ownership in etcd. Each client id is one key, <c>{KeyPrefix}/{ClusterId}/owners/{clientId}</c> (the client
/// id as its raw UTF-8 bytes); its value is the owner in the layout of <see cref="OwnerRecordCodec"/>, put on the
/// owner's lease when it has one; its revision is the key's etcd mod revision.
/// </summary>
/// <remarks>
/// Commits and releases from every caller go into one queue. A single loop takes up to
/// <see cref="EtcdOwnershipOptions.MaxBatchOperations"/> of them (and <see cref="EtcdOwnershipOptions.MaxBatchBytes"/>),
/// waiting at most <see cref="EtcdOwnershipOptions.MaxBatchDelay"/> for the batch to fill, and sends one etcd
/// transaction: all compares hold and every write is made at one new revision, or nothing is written. In the second
/// case the transaction's reads tell which operations conflicted; those complete with what was found and the others go
/// into the next transaction. A key appears at most once per transaction; a later operation on it waits for the next.
/// A transaction that fails (etcd unreachable, deadline) fails its operations with an <see cref="EtcdOwnershipException"/>;
/// one refused for a lease that is gone fails only the operations on that lease, and the others are sent again.
/// </remarks>
internal sealed partial class EtcdSessionOwnershipStore : ISessionOwnershipStore, IAsyncDisposable, IDisposable
{
    private readonly EtcdClient _client;
    private readonly byte[] _keyPrefix;
    private readonly TimeSpan _maxBatchDelay;
    private readonly TimeSpan _requestTimeout;
    private readonly int _maxBatchOperations;
    private readonly int _maxBatchBytes;
    private readonly EtcdOwnershipMetrics _metrics;
    private readonly ILogger<EtcdSessionOwnershipStore> _logger;
    private readonly Channel<PendingOwnershipOp> _queue = Channel.CreateUnbounded<PendingOwnershipOp>(
        new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = false });
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;
    private long _transactions;

    // The committer's wait for the queue to have operations, kept from one batch to the next (RunAsync alone uses it).
    // The end of the batch delay leaves it waiting instead of cancelling it: a cancelled channel wait ends in a thrown
    // OperationCanceledException, which was one per transaction and 1-2 % of a silo's CPU under a connect storm
    // (docs/benchmarks.md, "Where a connect's CPU goes at 1 and 4 silos").
    private Task<bool>? _readable;

    public EtcdSessionOwnershipStore(IOptions<EtcdOwnershipOptions> options, EtcdOwnershipMetrics metrics, ILogger<EtcdSessionOwnershipStore> logger)
    {
        var etcd = options.Value;
        _keyPrefix = Encoding.UTF8.GetBytes($"{etcd.KeyPrefix.TrimEnd('/')}/{etcd.ClusterId}/owners/");
        _maxBatchDelay = etcd.MaxBatchDelay;
        _requestTimeout = etcd.RequestTimeout;
        _maxBatchOperations = etcd.MaxBatchOperations;
        _maxBatchBytes = etcd.MaxBatchBytes;
        _metrics = metrics;
        _logger = logger;
        _client = EtcdConnection.CreateClient(etcd.ConnectionString);
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Transactions sent so far (answered or failed).</summary>
    internal long Transactions => Interlocked.Read(ref _transactions);

    /// <inheritdoc />
    /// <remarks>Cancelling stops the wait, not the commit: once queued, a commit may still be written.</remarks>
    public ValueTask<OwnershipCommit> CommitAsync(string clientId, SessionOwner owner, long expectedRevision, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentOutOfRangeException.ThrowIfNegative(expectedRevision);
        return Enqueue(new PendingOwnershipOp(Key(clientId), owner, expectedRevision), cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Cancelling stops the wait, not the release: once queued, a release may still be made.</remarks>
    public async ValueTask<OwnershipCommit> ReleaseAsync(string clientId, long expectedRevision, CancellationToken cancellationToken = default)
    {
        if (expectedRevision <= 0)
        {
            // etcd matches revision 0 against an absent key, so a delete would "succeed"; there is nothing to release.
            var (owner, revision) = await ReadAsync(clientId, cancellationToken);
            return new OwnershipCommit(false, revision, owner);
        }

        return await Enqueue(new PendingOwnershipOp(Key(clientId), null, expectedRevision), cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask<(SessionOwner? Owner, long Revision)> ReadAsync(string clientId, CancellationToken cancellationToken = default)
    {
        var response = await _client.GetAsync(new RangeRequest { Key = Key(clientId) }, deadline: DateTime.UtcNow + _requestTimeout, cancellationToken: cancellationToken);
        return response.Kvs.Count == 0 ? (null, 0) : (OwnerRecordCodec.Decode(response.Kvs[0].Value.Span), response.Kvs[0].ModRevision);
    }

    /// <summary>Stops taking operations, lets the queued ones go out (within the request timeout) and closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_queue.Writer.TryComplete())
        {
            return;
        }

        try
        {
            await _loop.WaitAsync(_requestTimeout);
        }
        catch (TimeoutException)
        {
            await _stopping.CancelAsync();
            await _loop;
        }

        _stopping.Dispose();
        _client.Dispose();
    }

    /// <summary>As <see cref="DisposeAsync"/>, for a container disposed synchronously.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private ValueTask<OwnershipCommit> Enqueue(PendingOwnershipOp op, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!_queue.Writer.TryWrite(op))
        {
            throw new ObjectDisposedException(nameof(EtcdSessionOwnershipStore));
        }

        return new ValueTask<OwnershipCommit>(cancellationToken.CanBeCanceled ? op.Task.WaitAsync(cancellationToken) : op.Task);
    }

    private ByteString Key(string clientId)
    {
        ArgumentException.ThrowIfNullOrEmpty(clientId);
        var key = new byte[_keyPrefix.Length + Encoding.UTF8.GetByteCount(clientId)];
        _keyPrefix.CopyTo(key, 0);
        Encoding.UTF8.GetBytes(clientId, key.AsSpan(_keyPrefix.Length));
        return UnsafeByteOperations.UnsafeWrap(key);
    }

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        var batch = new OwnershipBatch(_maxBatchOperations, _maxBatchBytes);

        // Operations not sent yet, oldest first: those sent again after a conflicting transaction, then those that
        // met their key already in a batch or found the batch full.
        var waiting = new List<PendingOwnershipOp>();
        var next = new List<PendingOwnershipOp>();
        try
        {
            while (waiting.Count > 0 || await NextReadableAsync(reader))
            {
                var started = Stopwatch.GetTimestamp();
                batch.Clear();
                try
                {
                    Take(waiting, reader, batch, next);
                    if (batch.Operations.Count == 0 && next.Count == 0)
                    {
                        // A wait kept from an earlier batch said "readable" for operations that batch already took.
                        continue;
                    }

                    if (!batch.IsFull && _maxBatchDelay > TimeSpan.Zero)
                    {
                        await FillAsync(reader, batch, next, started);
                    }

                    (waiting, next) = (next, waiting);
                    next.Clear();
                    await SendAsync(batch, waiting);
                }
                catch (Exception e) when (!_stopping.IsCancellationRequested)
                {
                    // The loop outlives any one batch: a fault here must not leave later callers waiting forever.
                    Fail(batch.Operations, new EtcdOwnershipException($"The ownership batch of {batch.Operations.Count} operations faulted: {e.Message}", e));
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }

        var stopped = new ObjectDisposedException(nameof(EtcdSessionOwnershipStore), "The ownership store stopped before the operation was answered.");
        foreach (var op in batch.Operations)
        {
            op.TrySetException(stopped);
        }

        foreach (var op in waiting)
        {
            op.TrySetException(stopped);
        }

        while (reader.TryRead(out var op))
        {
            op.TrySetException(stopped);
        }
    }

    private static void Take(List<PendingOwnershipOp> waiting, ChannelReader<PendingOwnershipOp> reader, OwnershipBatch batch, List<PendingOwnershipOp> next)
    {
        foreach (var op in waiting)
        {
            if (!batch.TryAdd(op))
            {
                next.Add(op);
            }
        }

        Drain(reader, batch, next);
    }

    // What the queue holds now, into the batch until it is full; an operation the batch refuses waits for the next one.
    private static void Drain(ChannelReader<PendingOwnershipOp> reader, OwnershipBatch batch, List<PendingOwnershipOp> next)
    {
        while (!batch.IsFull && reader.TryRead(out var op))
        {
            if (!batch.TryAdd(op))
            {
                next.Add(op);
            }
        }
    }

    private Task<bool> Readable(ChannelReader<PendingOwnershipOp> reader) =>
        _readable ??= reader.WaitToReadAsync(_stopping.Token).AsTask();

    private async Task<bool> NextReadableAsync(ChannelReader<PendingOwnershipOp> reader)
    {
        var readable = await Readable(reader);
        _readable = null;
        return readable;
    }

    private async Task FillAsync(ChannelReader<PendingOwnershipOp> reader, OwnershipBatch batch, List<PendingOwnershipOp> next, long started)
    {
        // Taking the first operations may already have used up the delay (a busy machine): send at once then.
        var remaining = _maxBatchDelay - Stopwatch.GetElapsedTime(started);
        if (remaining <= TimeSpan.Zero)
        {
            return;
        }

        using var delayDone = new CancellationTokenSource();
        var delay = Task.Delay(remaining, delayDone.Token);
        try
        {
            while (!batch.IsFull)
            {
                // The delay's end is the common way out, and it throws nothing; the wait stays for the next batch.
                var readable = Readable(reader);
                if (await Task.WhenAny(readable, delay) != readable)
                {
                    return;
                }

                _stopping.Token.ThrowIfCancellationRequested();
                if (!readable.IsCompletedSuccessfully || !readable.Result)
                {
                    // The queue is complete: the loop finds it so through the same wait.
                    return;
                }

                _readable = null;
                Drain(reader, batch, next);
            }
        }
        finally
        {
            // Frees the delay's timer when the batch filled first (the cancelled delay is not awaited: nothing throws).
            await delayDone.CancelAsync();
        }
    }

    private async Task SendAsync(OwnershipBatch batch, List<PendingOwnershipOp> waiting)
    {
        var ops = batch.Operations;
        var request = batch.ToTxnRequest();
        var started = Stopwatch.GetTimestamp();
        TxnResponse response;
        try
        {
            response = await _client.TransactionAsync(request, deadline: DateTime.UtcNow + _requestTimeout, cancellationToken: _stopping.Token);
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            Interlocked.Increment(ref _transactions);
            _metrics.RecordTxn(ops.Count, started);
            if (IsLeaseNotFound(e) && await SeparateDeadLeasesAsync(ops, waiting))
            {
                return;
            }

            Fail(ops, new EtcdOwnershipException($"etcd did not commit the ownership transaction of {ops.Count} operations: {e.Message}", e));
            return;
        }

        Interlocked.Increment(ref _transactions);
        _metrics.RecordTxn(ops.Count, started);
        if (response.Succeeded)
        {
            // Every write of one transaction is made at the transaction's revision.
            var revision = response.Header.Revision;

            // Counted before any caller is told, so a scrape after a CONNACK includes that client's commit.
            _metrics.RecordCommitted(ops.Count);
            foreach (var op in ops)
            {
                op.TrySetResult(op.Owner is null ? new OwnershipCommit(true, 0, null) : new OwnershipCommit(true, revision, op.Owner));
            }

            return;
        }

        // Nothing was written. The reads, made at the revision the compares saw, tell which operations conflicted;
        // the rest are sent again, ahead of everything that came later.
        var again = 0;
        for (var i = 0; i < ops.Count; i++)
        {
            var op = ops[i];
            var kvs = response.Responses[i].ResponseRange.Kvs;
            var found = kvs.Count == 0 ? 0 : kvs[0].ModRevision;
            if (found == op.ExpectedRevision)
            {
                waiting.Insert(again++, op);
                continue;
            }

            _metrics.RecordConflict();
            try
            {
                op.TrySetResult(new OwnershipCommit(false, found, found == 0 ? null : OwnerRecordCodec.Decode(kvs[0].Value.Span)));
            }
            catch (InvalidDataException e)
            {
                op.TrySetException(e);
            }
        }

        if (again == ops.Count)
        {
            // Every compare held by the reads yet the transaction failed: sending it again would loop.
            waiting.RemoveRange(0, again);
            Fail(ops, new EtcdOwnershipException($"etcd refused an ownership transaction of {again} operations whose revisions all matched."));
        }
    }

    /// <summary>
    /// One unknown lease fails the whole transaction, which holds commits of other gateways too. Finds the leases that
    /// are gone, fails only their operations and queues the others again, ahead of everything that came later.
    /// </summary>
    /// <returns>False when no lease of the batch is gone, or when that cannot be found out.</returns>
    private async Task<bool> SeparateDeadLeasesAsync(List<PendingOwnershipOp> ops, List<PendingOwnershipOp> waiting)
    {
        var dead = new HashSet<long>();
        try
        {
            var checkedLeases = new HashSet<long>();
            foreach (var op in ops)
            {
                var leaseId = op.Owner?.LeaseId ?? 0;
                if (leaseId != 0 && checkedLeases.Add(leaseId))
                {
                    var lease = await _client.LeaseTimeToLiveAsync(
                        new LeaseTimeToLiveRequest { ID = leaseId }, deadline: DateTime.UtcNow + _requestTimeout, cancellationToken: _stopping.Token);
                    if (lease.TTL <= 0)
                    {
                        dead.Add(leaseId);
                    }
                }
            }
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            LogLeaseCheckFailed(_logger, e);
            return false;
        }

        if (dead.Count == 0)
        {
            return false;
        }

        var again = 0;
        foreach (var op in ops)
        {
            var leaseId = op.Owner?.LeaseId ?? 0;
            if (leaseId != 0 && dead.Contains(leaseId))
            {
                _metrics.RecordFailed(1);
                op.TrySetException(new EtcdOwnershipException($"etcd has no lease {leaseId:x} (expired or revoked): the owner record cannot be put on it."));
            }
            else
            {
                waiting.Insert(again++, op);
            }
        }

        LogDeadLeases(_logger, dead.Count, ops.Count - again, again);
        return true;
    }

    private void Fail(List<PendingOwnershipOp> ops, EtcdOwnershipException failure)
    {
        _metrics.RecordFailed(ops.Count);
        LogTransactionFailed(_logger, failure.InnerException ?? failure, ops.Count);
        foreach (var op in ops)
        {
            op.TrySetException(failure);
        }
    }

    private static bool IsLeaseNotFound(Exception e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is RpcException { StatusCode: StatusCode.NotFound } rpc && rpc.Status.Detail.Contains("lease not found", StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    [LoggerMessage(1, LogLevel.Warning, "An etcd ownership transaction of {Count} operations failed; they are reported as failed to their callers")]
    private static partial void LogTransactionFailed(ILogger logger, Exception exception, int count);

    [LoggerMessage(2, LogLevel.Warning, "An etcd ownership transaction named {DeadLeases} lease(s) that are gone: {Failed} operations on them failed, {Again} others are sent again")]
    private static partial void LogDeadLeases(ILogger logger, int deadLeases, int failed, int again);

    [LoggerMessage(3, LogLevel.Warning, "Could not find which lease of a failed ownership transaction is gone; all its operations fail")]
    private static partial void LogLeaseCheckFailed(ILogger logger, Exception exception);
}
