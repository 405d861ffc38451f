using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The gateway's shared state: its live connections, the observer through which silos push packets to them,
/// authentication, limits, the keep-alive sweep and readiness.
/// </summary>
internal sealed partial class MqttGateway : IGatewayObserver, IHostedService, IDisposable
{
    private readonly ConcurrentDictionary<long, MqttConnection> _connections = new();
    private readonly IGrainFactory _grainFactory;
    private readonly ILogger<MqttGateway> _logger;
    private readonly ConnectAuthenticator _authenticator;
    private readonly IGatewayLease? _lease;
    private ITimer? _sweep;
    private ITimer? _heartbeat;
    private int _heartbeatRunning;
    // Session grains tell connections apart by id alone, across every gateway and every restart of one (a restarted
    // gateway keeps its configured id): each process starts its sequence at a random point of a 2^62 range.
    private long _nextConnectionId = Random.Shared.NextInt64(1, 1L << 62);
    private int _openSessions;
    private ConnectionBudget _budget;
    private volatile bool _started;
    private volatile bool _stopping;
    private IGatewayObserver? _reference;
    private GrainRefs<IClientSessionGrain>? _sessions;
    private ITopicShardGrain?[]? _shards;

    public MqttGateway(
        IGrainFactory grainFactory,
        IOptions<MqttGatewayOptions> options,
        IOptions<MqttBrokerOptions> brokerOptions,
        MqttMetrics metrics,
        TimeProvider timeProvider,
        ILoggerFactory loggerFactory,
        IGatewayLease? lease = null,
        IOptions<TracingOptions>? tracing = null,
        SiloLossWatch? siloLoss = null)
    {
        _lease = lease;
        SiloLoss = siloLoss ?? new SiloLossWatch(options, timeProvider, loggerFactory.CreateLogger<SiloLossWatch>());
        CallDeadlines = new CallDeadlines(timeProvider, SiloLoss);
        _grainFactory = grainFactory;
        _logger = loggerFactory.CreateLogger<MqttGateway>();
        Options = options.Value;
        TopicShards = brokerOptions.Value.TopicShards;
        Metrics = metrics;
        TimeProvider = timeProvider;
        ConnectionLogger = loggerFactory.CreateLogger<MqttConnection>();
        ConnectionLog = new ConnectionLogBudget(timeProvider);
        Id = string.IsNullOrEmpty(Options.GatewayId) ? $"{Environment.MachineName}-{Guid.NewGuid():N}"[..^24] : Options.GatewayId;
        _authenticator = new ConnectAuthenticator(Options, timeProvider, loggerFactory);
        Limits = new GatewayLimits(Options, metrics, timeProvider, _logger);
        Access = new AccessControl(Options, metrics, loggerFactory.CreateLogger<AccessControl>(), timeProvider);
        Tracing = tracing is null ? null : GatewayTracing.Create(tracing.Value, metrics, loggerFactory.CreateLogger<GatewayTracing>());
        Traffic = new GatewayTraffic(metrics, timeProvider);
        _budget = ConnectionBudget.Unlimited(Options.MaxConnections);
        Sockets = new SocketAdmission(metrics, timeProvider, _logger);
    }

    public string Id { get; }

    /// <summary>
    /// Cuts short the grain calls under way when the gateway loses a silo (<c>MqttConnection.CallBoundedAsync</c> and the
    /// CONNECT's session call link their bound with <see cref="SiloLossWatch.CallsInFlight"/>).
    /// </summary>
    public SiloLossWatch SiloLoss { get; }

    /// <summary>The shared deadlines of the grain calls a client waits on (<c>Mqtt:PublishTimeout</c>).</summary>
    public CallDeadlines CallDeadlines { get; }

    /// <summary>The gateway's spans; null while <c>Tracing:Enabled</c> is false.</summary>
    public GatewayTracing? Tracing { get; }

    public MqttGatewayOptions Options { get; }

    public int TopicShards { get; }

    public MqttMetrics Metrics { get; }

    public TimeProvider TimeProvider { get; }

    /// <summary>The logger every connection writes to (one for all: a logger per connection costs memory per connection).</summary>
    public ILogger<MqttConnection> ConnectionLogger { get; }

    /// <summary>The gateway-wide budget of the lines connections write once each (refused, closed, bad input).</summary>
    public ConnectionLogBudget ConnectionLog { get; }

    public IGrainFactory GrainFactory => _grainFactory;

    /// <summary>The listeners' connection rates and the overload state (<c>Mqtt:Limits</c>, <c>Mqtt:Overload</c>).</summary>
    public GatewayLimits Limits { get; }

    /// <summary>Checks the credentials of every CONNECT.</summary>
    public ConnectAuthenticator Authenticator => _authenticator;

    /// <summary>The ACL file's rules and each connection's access (see <see cref="AccessControl"/>).</summary>
    public AccessControl Access { get; }

    /// <summary>This gateway's counters, which every heartbeat carries to the cluster's figures.</summary>
    public GatewayTraffic Traffic { get; }

    /// <summary>The session grain of <paramref name="clientId"/> (see <see cref="GrainRefs{TGrain}"/>).</summary>
    public IClientSessionGrain Session(string clientId) =>
        (_sessions ??= new GrainRefs<IClientSessionGrain>(_grainFactory)).Get(clientId);

    /// <summary>The grain of topic shard <paramref name="shard"/>; one reference per shard, made on first use.</summary>
    public ITopicShardGrain Shard(int shard)
    {
        var shards = _shards ??= new ITopicShardGrain?[TopicShards];
        return shards[shard] ??= _grainFactory.GetGrain<ITopicShardGrain>(shard);
    }

    /// <summary>True once the listeners accept and the cluster is reachable, until shutdown begins.</summary>
    public bool IsReady => _started && !_stopping;

    public bool IsStopping => _stopping;

    /// <summary>The reference silos use to reach this gateway.</summary>
    public IGatewayObserver Reference => _reference ?? throw new InvalidOperationException("The gateway is not started.");

    public int ConnectionCount => _connections.Count;

    /// <summary>The lease the ownership records of this gateway's connections hang on (0: none).</summary>
    public long LeaseId => _lease?.LeaseId ?? 0;

    public long NextConnectionId() => Interlocked.Increment(ref _nextConnectionId);

    public void Register(MqttConnection connection) => _connections[connection.Id] = connection;

    public void Unregister(MqttConnection connection) => _connections.TryRemove(connection.Id, out _);

    /// <summary>
    /// The session slots: <see cref="MqttGatewayOptions.MaxConnections"/>, or less when the open-file limit leaves
    /// less (set at start, see <see cref="ConnectionBudget"/>).
    /// </summary>
    public int MaxConnections => _budget.MaxConnections;

    /// <summary>Whether the open-file limit lowered <see cref="MqttGatewayOptions.MaxConnections"/> (see <see cref="ConnectionBudget.Lowers"/>).</summary>
    public bool MaxConnectionsLowered => _budget.Lowers(Options.MaxConnections);

    /// <summary>The admission of the MQTT listeners' accepted sockets at the open-file limit.</summary>
    public SocketAdmission Sockets { get; }

    /// <summary>Takes one of the <see cref="MaxConnections"/> session slots.</summary>
    public bool TryAcquireSessionSlot()
    {
        if (Interlocked.Increment(ref _openSessions) <= _budget.MaxConnections)
        {
            return true;
        }

        Interlocked.Decrement(ref _openSessions);
        return false;
    }

    public void ReleaseSessionSlot() => Interlocked.Decrement(ref _openSessions);

    public Task Deliver(Delivery[] deliveries)
    {
        foreach (var d in deliveries)
        {
            if (_connections.TryGetValue(d.ConnectionId, out var connection))
            {
                connection.EnqueueDelivery(d);
            }
            else if (d.Qos == 0)
            {
                // QoS 1/2 messages stay in flight in their session and are re-sent on reconnect.
                Metrics.CountDrop(DropReason.ConnectionGone);
            }
        }

        return Task.CompletedTask;
    }

    public Task Disconnect(long connectionId, byte reasonCode)
    {
        if (!_connections.TryGetValue(connectionId, out var connection))
        {
            return Task.CompletedTask;
        }

        if (reasonCode == CloseReason.SessionFailedOver.DisconnectReasonCode())
        {
            connection.CloseToResume();
        }
        else
        {
            var reason = reasonCode == CloseReason.AdministrativeAction.DisconnectReasonCode() ? CloseReason.AdministrativeAction : CloseReason.SessionTakenOver;
            connection.CloseByServer(reason, reasonCode);
        }

        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Here, not in the constructor: by now the silo (when co-hosted) and the cluster client have opened their files
        // and sockets, and most assemblies are loaded, so the count of descriptors open is close to the process's own.
        ApplyFileLimit(OpenFileLimit.Raise(), OpenFileLimit.CountOpen());
        _reference = _grainFactory.CreateObjectReference<IGatewayObserver>(this);
        _sweep = TimeProvider.CreateTimer(_ => Sweep(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        _heartbeat = TimeProvider.CreateTimer(_ => _ = HeartbeatAsync(), null, TimeSpan.Zero, Options.HeartbeatInterval);
        Limits.Start();
        LogStarted(_logger, Id, _authenticator.UserCount, Options.AnonymousAllowed);
        return Task.CompletedTask;
    }

    /// <summary>Called when the listeners really accept (after the host started).</summary>
    public void MarkStarted() => _started = true;

    /// <summary>
    /// Starts the drain: refuses new CONNECTs and closes every connection (MQTT 5: DISCONNECT 0x8B). Called when
    /// the host begins to stop, before Kestrel stops, so clients get the reason code rather than a reset.
    /// </summary>
    public void BeginDrain()
    {
        if (_stopping)
        {
            return;
        }

        _stopping = true;
        var open = _connections.Values.ToArray();
        LogDraining(_logger, open.Length, CloseReason.ServerShuttingDown.DisconnectReasonCode());
        foreach (var connection in open)
        {
            connection.CloseByServer(CloseReason.ServerShuttingDown);
        }
    }

    /// <summary>
    /// Aborts the connections of the gateway's own TCP transport still open (their sockets close at once); returns how
    /// many. For a shutdown that ran out of time: Kestrel aborts its own connections.
    /// </summary>
    public int AbortConnections()
    {
        var aborted = 0;
        foreach (var (_, connection) in _connections)
        {
            if (connection.AbortSocket())
            {
                aborted++;
            }
        }

        return aborted;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        BeginDrain();

        // Each connection tells its session it ended; wait for them (bounded by the host's shutdown timeout).
        await Task.WhenAll(_connections.Values.Select(c => c.Completion)).WaitAsync(cancellationToken).ConfigureAwait(false);
        _heartbeat?.Dispose();
        try
        {
            await _grainFactory.GetGrain<IGatewayDirectoryGrain>(0).Leave(Id).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogLeaveFailed(_logger, ex);
        }

        if (_reference is not null)
        {
            _grainFactory.DeleteObjectReference<IGatewayObserver>(_reference);
        }
    }

    public void Dispose()
    {
        // A host whose start failed disposes the gateway without stopping it: a heartbeat still on its way ends quietly.
        _stopping = true;
        _sweep?.Dispose();
        _heartbeat?.Dispose();
        Limits.Dispose();
        _authenticator.Dispose();
        Access.Dispose();
        Traffic.Dispose();
    }

    /// <summary>
    /// Sets the connection budget (<see cref="MaxConnections"/>, <see cref="SocketAdmission.MaxSockets"/>) under the open-file limit
    /// <paramref name="limit"/> with <paramref name="openFiles"/> descriptors open, and logs it: a line with the limit
    /// and the budget, a warning when it lowers <c>Mqtt:MaxConnections</c>. A limit that leaves no connection at all
    /// fails the start (<see cref="OpenFileLimitException"/>): a gateway that could only refuse is better not started,
    /// where an operator sees why at once.
    /// </summary>
    internal void ApplyFileLimit(OpenFileLimit.State limit, long openFiles)
    {
        if (limit.Error != 0)
        {
            LogFileLimitNotRaised(_logger, limit.Soft, limit.Hard, limit.Error);
        }

        var reserve = Options.FileDescriptorReserve;
        var budget = ConnectionBudget.Compute(Options.MaxConnections, limit.Soft, openFiles, reserve)
            ?? throw new OpenFileLimitException(
                $"The open file limit {limit.Soft} leaves no room for MQTT connections: {openFiles} files are open at start and " +
                $"Mqtt:FileDescriptorReserve keeps {reserve} more. Raise the limit (ulimit -n, systemd LimitNOFILE, the container's nofile ulimit) " +
                "or lower Mqtt:FileDescriptorReserve.");
        if (limit.Soft > 0)
        {
            LogFileLimit(_logger, limit.Soft, limit.Hard, RaisedText(limit), openFiles, reserve, budget.MaxConnections, budget.MaxSockets);
        }

        if (budget.Lowers(Options.MaxConnections))
        {
            LogMaxConnectionsLowered(_logger, Options.MaxConnections, limit.Soft, openFiles, reserve, budget.MaxConnections);
        }

        _budget = budget;
        Sockets.Limit(budget);
    }

    // The .NET runtime on Linux already raises the soft limit to the hard one when the process starts (seen under
    // prlimit --nofile=1000:4000: 4000 by the time the gateway starts), so "at the hard limit" is the usual case.
    private static string RaisedText(OpenFileLimit.State limit) =>
        limit.Before < limit.Soft ? $"raised from {limit.Before}" : limit.Soft >= limit.Hard ? "at the hard limit" : "below the hard limit";

    /// <summary>
    /// Reports this gateway alive to the cluster, with its counters for the cluster's figures. When the cluster already declared it dead (it was cut off for longer
    /// than the gateway timeout), its sessions were set offline elsewhere, so every connection here is closed and
    /// the clients reconnect to a session that knows them.
    /// </summary>
    private async Task HeartbeatAsync()
    {
        if (_stopping || Interlocked.Exchange(ref _heartbeatRunning, 1) == 1)
        {
            return;
        }

        try
        {
            if (!await _grainFactory.GetGrain<IGatewayDirectoryGrain>(0).Heartbeat(Traffic.Report(Id)))
            {
                var open = _connections.Values.ToArray();
                LogDeclaredDead(_logger, Id, open.Length);
                foreach (var connection in open)
                {
                    connection.CloseByServer(CloseReason.GatewayDeclaredDead);
                }
            }
        }
        catch (Exception ex)
        {
            // While the host stops (and takes the cluster client with it), nothing is owed to the cluster any more.
            if (!_stopping && ex is not ObjectDisposedException)
            {
                LogHeartbeatFailed(_logger, ex);
            }
        }
        finally
        {
            Volatile.Write(ref _heartbeatRunning, 0);
        }
    }

    /// <summary>Closes the connections past their keep alive, connect timeout or partial-packet timeout (once a second).</summary>
    internal void Sweep()
    {
        var now = TimeProvider.GetTimestamp();
        // The dictionary's own enumerator, not Values: Values takes every lock of the dictionary and copies it into a
        // new list, which at 16,000 connections is a 128 KB array on the large object heap every second. Nothing
        // collects those until a full collection, so an idle gateway's memory grew by about that much a second.
        foreach (var (_, connection) in _connections)
        {
            connection.CheckTimeouts(now);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Gateway {GatewayId} started ({Users} users, anonymous allowed: {Anonymous})")]
    private static partial void LogStarted(ILogger logger, string gatewayId, int users, bool anonymous);

    [LoggerMessage(Level = LogLevel.Error, Message = "Gateway {GatewayId} was declared dead by the cluster while cut off; closing its {Count} connections")]
    private static partial void LogDeclaredDead(ILogger logger, string gatewayId, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway heartbeat failed; the cluster declares a gateway dead after Mqtt:GatewayTimeout without one")]
    private static partial void LogHeartbeatFailed(ILogger logger, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Telling the cluster this gateway left failed")]
    private static partial void LogLeaveFailed(ILogger logger, Exception ex);

    [LoggerMessage(Level = LogLevel.Information, Message = "Open file limit {Soft} (hard {Hard}, {Raised}); {Open} open at start, Mqtt:FileDescriptorReserve {Reserve}: up to {Connections} MQTT connections, {Sockets} accepted sockets")]
    private static partial void LogFileLimit(ILogger logger, long soft, long hard, string raised, long open, int reserve, int connections, int sockets);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Raising the open file limit {Soft} to the hard limit {Hard} failed (errno {Errno})")]
    private static partial void LogFileLimitNotRaised(ILogger logger, long soft, long hard, int errno);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Mqtt:MaxConnections {Configured} is more than the open file limit {Limit} allows ({Open} open at start, Mqtt:FileDescriptorReserve {Reserve}); using {Connections}. Raise the limit (ulimit -n, systemd LimitNOFILE) or lower Mqtt:MaxConnections")]
    private static partial void LogMaxConnectionsLowered(ILogger logger, int configured, long limit, long open, int reserve, int connections);

    [LoggerMessage(Level = LogLevel.Information, Message = "Gateway stopping: closing {Count} connections with reason 0x{Code:X2}")]
    private static partial void LogDraining(ILogger logger, int count, byte code);
}
