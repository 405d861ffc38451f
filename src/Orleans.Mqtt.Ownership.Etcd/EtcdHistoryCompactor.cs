using System.Text;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Etcd;
using static Etcdserverpb.Compare.Types;

namespace Orleans.Mqtt.Ownership.Etcd;

/// <summary>
/// Keeps etcd's revision history bounded. Every connect, takeover and release writes a new revision of an ownership
/// record, and etcd keeps every old revision (in its in-memory index and its database file) until it is compacted;
/// etcd 3.4 does not compact on its own unless started with <c>--auto-compaction-retention</c>. Without compaction a
/// fleet that reconnects fills etcd's storage quota, after which etcd refuses every write and no client can connect.
/// </summary>
/// <remarks>
/// Every silo runs one; a marker key, <c>{KeyPrefix}/{ClusterId}/compaction</c>, makes one of them act per
/// <see cref="EtcdOwnershipOptions.CompactionInterval"/>. Each round, a silo rewrites the marker only if it is still at
/// the revision that silo last saw (a compare-and-swap). The one that succeeds compacts up to the revision of the
/// marker's previous write, one interval ago, so the last interval of history stays readable; the others see the new
/// marker and wait for the next round. Compaction only drops old revisions: the current value of every key stays.
/// </remarks>
internal sealed partial class EtcdHistoryCompactor : IHostedService, IAsyncDisposable, IDisposable
{
    private readonly EtcdClient _client;
    private readonly ByteString _markerKey;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _requestTimeout;
    private readonly EtcdOwnershipMetrics _metrics;
    private readonly ILogger<EtcdHistoryCompactor> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;

    // The marker's mod revision as this silo last saw it; 0: not seen yet (matches only an absent marker).
    private long _markerRevision;

    /// <summary>Creates the compactor; nothing is sent to etcd before <see cref="StartAsync"/>.</summary>
    public EtcdHistoryCompactor(IOptions<EtcdOwnershipOptions> options, EtcdOwnershipMetrics metrics, ILogger<EtcdHistoryCompactor> logger)
    {
        var etcd = options.Value;
        _markerKey = ByteString.CopyFrom(Encoding.UTF8.GetBytes($"{etcd.KeyPrefix.TrimEnd('/')}/{etcd.ClusterId}/compaction"));
        _interval = etcd.CompactionInterval;
        _requestTimeout = etcd.RequestTimeout;
        _metrics = metrics;
        _logger = logger;
        _client = EtcdConnection.CreateClient(etcd.ConnectionString);
    }

    /// <summary>Starts the rounds, one per interval; with an interval of zero, compaction is left to etcd's own settings.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_interval == TimeSpan.Zero)
        {
            LogDisabled(_logger);
            return Task.CompletedTask;
        }

        _loop = Task.Run(RunAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    /// <summary>Stops the rounds; a compaction already sent completes in etcd.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync();
        }

        await _loop;
    }

    /// <summary>Stops the rounds and closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None);
        _stopping.Dispose();
        _client.Dispose();
    }

    /// <summary>As <see cref="DisposeAsync"/>, for a container disposed synchronously.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>
    /// One round: claims it by moving the marker, then compacts up to the marker's previous revision.
    /// </summary>
    /// <returns>The revision compacted to, or 0 when another silo had the round, the marker was new, or etcd had
    /// already compacted past it.</returns>
    internal async Task<long> RunRoundAsync(CancellationToken cancellationToken)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = _markerKey, Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = _markerRevision });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = _markerKey, PrevKv = true } });
        txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = _markerKey } });
        var claim = await _client.TransactionAsync(txn, deadline: DateTime.UtcNow + _requestTimeout, cancellationToken: cancellationToken);
        if (!claim.Succeeded)
        {
            var kvs = claim.Responses[0].ResponseRange.Kvs;
            _markerRevision = kvs.Count == 0 ? 0 : kvs[0].ModRevision;
            return 0;
        }

        _markerRevision = claim.Header.Revision;
        var previous = claim.Responses[0].ResponsePut.PrevKv;
        if (previous is null)
        {
            return 0;
        }

        try
        {
            await _client.CompactAsync(new CompactionRequest { Revision = previous.ModRevision }, deadline: DateTime.UtcNow + _requestTimeout, cancellationToken: cancellationToken);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.OutOfRange)
        {
            // etcd compacted past it already (its own retention, or an operator).
            LogAlreadyCompacted(_logger, previous.ModRevision);
            return 0;
        }

        _metrics.RecordCompaction();
        LogCompacted(_logger, previous.ModRevision, claim.Header.Revision - previous.ModRevision);
        return previous.ModRevision;
    }

    private async Task RunAsync()
    {
        using var timer = new PeriodicTimer(_interval);
        try
        {
            do
            {
                try
                {
                    await RunRoundAsync(_stopping.Token);
                }
                catch (Exception e) when (!_stopping.IsCancellationRequested)
                {
                    _metrics.RecordCompactionFailed();
                    LogRoundFailed(_logger, e, _interval);
                }
            }
            while (await timer.WaitForNextTickAsync(_stopping.Token));
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(1, LogLevel.Information, "etcd history compacted up to revision {Revision} ({Kept} newer revisions kept)")]
    private static partial void LogCompacted(ILogger logger, long revision, long kept);

    [LoggerMessage(2, LogLevel.Debug, "etcd history was already compacted past revision {Revision}")]
    private static partial void LogAlreadyCompacted(ILogger logger, long revision);

    [LoggerMessage(3, LogLevel.Warning, "Compacting etcd's history failed; trying again in {Interval}")]
    private static partial void LogRoundFailed(ILogger logger, Exception exception, TimeSpan interval);

    [LoggerMessage(4, LogLevel.Information, "etcd history compaction is off (Ownership:Etcd:CompactionInterval is 0): etcd must compact on its own (--auto-compaction-retention)")]
    private static partial void LogDisabled(ILogger logger);
}
