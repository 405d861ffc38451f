using dotnet_etcd;
using Etcdserverpb;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Etcd;

namespace Orleans.Mqtt.Ownership.Etcd;

/// <summary>
/// The gateway's etcd lease, on which the owner records of its connections are put so they expire with the gateway.
/// <see cref="StartAsync"/> grants it; it is kept alive every third of <see cref="EtcdOwnershipOptions.LeaseTtl"/>;
/// <see cref="StopAsync"/> revokes it, which deletes the records at once. When a keep-alive finds the lease gone (it
/// expired while etcd was unreachable, and with it the records), a new lease is granted and <see cref="LeaseId"/> changes.
/// </summary>
public sealed partial class EtcdGatewayLease : IGatewayLease, IHostedService, IAsyncDisposable, IDisposable
{
    private readonly EtcdClient _client;
    private readonly long _ttlSeconds;
    private readonly TimeSpan _refreshInterval;
    private readonly TimeSpan _requestTimeout;
    private readonly TimeSpan _startTimeout;
    private readonly ILogger<EtcdGatewayLease> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private Task _keepAlive = Task.CompletedTask;
    private long _leaseId;

    /// <summary>Creates the lease holder; nothing is sent to etcd before <see cref="StartAsync"/>.</summary>
    public EtcdGatewayLease(IOptions<EtcdOwnershipOptions> options, ILogger<EtcdGatewayLease> logger)
    {
        var etcd = options.Value;
        _ttlSeconds = (long)etcd.LeaseTtl.TotalSeconds;
        _refreshInterval = etcd.LeaseTtl / 3;
        // A keep-alive must end before the next one is due; the first grant, at start, has the whole request timeout.
        _requestTimeout = etcd.RequestTimeout < _refreshInterval ? etcd.RequestTimeout : _refreshInterval;
        _startTimeout = etcd.RequestTimeout;
        _logger = logger;
        _client = EtcdConnection.CreateClient(etcd.ConnectionString);
    }

    /// <inheritdoc cref="IGatewayLease.LeaseId" />
    /// <remarks>0 before <see cref="StartAsync"/> and after <see cref="StopAsync"/>.</remarks>
    public long LeaseId => Interlocked.Read(ref _leaseId);

    /// <summary>Raised with the new lease id when the lease was found gone and replaced.</summary>
    public event Action<long>? LeaseReplaced;

    /// <summary>Grants the lease and starts keeping it alive; fails when etcd does not grant it.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        Interlocked.Exchange(ref _leaseId, await GrantAsync(_startTimeout, cancellationToken));
        LogGranted(_logger, LeaseId, _ttlSeconds);
        _keepAlive = Task.Run(KeepAliveAsync, CancellationToken.None);
    }

    /// <summary>Stops the keep-alive and revokes the lease, so the records on it are deleted now rather than at expiry.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await _keepAlive;
        var leaseId = Interlocked.Exchange(ref _leaseId, 0);
        if (leaseId == 0)
        {
            return;
        }

        try
        {
            await _client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseId }, deadline: DateTime.UtcNow + _requestTimeout, cancellationToken: cancellationToken);
            LogRevoked(_logger, leaseId);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The lease then expires on its own, after its TTL.
            LogRevokeFailed(_logger, e, leaseId);
        }
    }

    /// <summary>Stops the keep-alive without revoking (the lease expires after its TTL) and closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync();
        }

        await _keepAlive;
        _stopping.Dispose();
        _client.Dispose();
    }

    /// <summary>As <see cref="DisposeAsync"/>, for a container disposed synchronously.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private async Task KeepAliveAsync()
    {
        using var timer = new PeriodicTimer(_refreshInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                await RefreshAsync();
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    /// <summary>One keep-alive; a lease found gone is replaced. Errors are logged and retried at the next tick.</summary>
    internal async Task RefreshAsync()
    {
        var leaseId = LeaseId;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(_requestTimeout);
            long ttl = -1;
            await _client.LeaseKeepAlive(new LeaseKeepAliveRequest { ID = leaseId }, response => ttl = response.TTL, timeout.Token);
            if (ttl > 0)
            {
                return;
            }

            if (ttl < 0)
            {
                throw new EtcdOwnershipException($"etcd closed the keep-alive of lease {leaseId:x} without an answer.");
            }

            var replacement = await GrantAsync(_requestTimeout, _stopping.Token);
            Interlocked.Exchange(ref _leaseId, replacement);
            LogReplaced(_logger, leaseId, replacement);
            LeaseReplaced?.Invoke(replacement);
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            LogKeepAliveFailed(_logger, e, leaseId);
        }
    }

    private async Task<long> GrantAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var response = await _client.LeaseGrantAsync(new LeaseGrantRequest { TTL = _ttlSeconds }, deadline: DateTime.UtcNow + timeout, cancellationToken: cancellationToken);
        if (!string.IsNullOrEmpty(response.Error))
        {
            throw new EtcdOwnershipException($"etcd refused a lease of {_ttlSeconds} s: {response.Error}");
        }

        return response.ID;
    }

    [LoggerMessage(1, LogLevel.Information, "Gateway lease {LeaseId:x} granted with a TTL of {TtlSeconds} s")]
    private static partial void LogGranted(ILogger logger, long leaseId, long ttlSeconds);

    [LoggerMessage(2, LogLevel.Warning, "Gateway lease {OldLeaseId:x} was gone (expired while etcd was unreachable?); its ownership records are deleted. New lease {LeaseId:x}")]
    private static partial void LogReplaced(ILogger logger, long oldLeaseId, long leaseId);

    [LoggerMessage(3, LogLevel.Warning, "Keep-alive of gateway lease {LeaseId:x} failed; retrying at the next refresh")]
    private static partial void LogKeepAliveFailed(ILogger logger, Exception exception, long leaseId);

    [LoggerMessage(4, LogLevel.Information, "Gateway lease {LeaseId:x} revoked")]
    private static partial void LogRevoked(ILogger logger, long leaseId);

    [LoggerMessage(5, LogLevel.Warning, "Could not revoke gateway lease {LeaseId:x}; it expires after its TTL")]
    private static partial void LogRevokeFailed(ILogger logger, Exception exception, long leaseId);
}
