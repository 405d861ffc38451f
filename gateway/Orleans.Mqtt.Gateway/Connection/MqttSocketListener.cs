using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The MQTT over TCP listener when <c>Mqtt:Tcp:Transport</c> is <c>Sockets</c>: binds <c>Mqtt:BindAddress</c> and
/// <c>Mqtt:Tcp:Port</c> at start (a port in use fails the start as Kestrel's listeners do), accepts once the host has
/// started, and runs one <see cref="MqttConnection"/> per accepted socket on a <see cref="SocketConnection"/>.
/// </summary>
/// <remarks>
/// Stopping closes the listening socket, then waits until every connection has ended (the gateway's drain closes them
/// when the host begins to stop) or the host's shutdown timeout runs out, when the ones still open are aborted.
/// </remarks>
internal sealed partial class MqttSocketListener(
    MqttGateway gateway,
    IOptions<MqttGatewayOptions> options,
    IHostApplicationLifetime lifetime,
    ILogger<MqttSocketListener> logger) : IHostedService
{
    /// <summary>The first pause after an accept that failed for want of a resource; it doubles while they keep failing.</summary>
    internal static readonly TimeSpan FirstAcceptPause = TimeSpan.FromMilliseconds(10);

    /// <summary>The longest pause between accepts that keep failing.</summary>
    internal static readonly TimeSpan MaxAcceptPause = TimeSpan.FromSeconds(1);

    // Kestrel's default backlog: connections the kernel completes while the accept loop is busy.
    private const int Backlog = 512;

    private readonly LogLimiter _acceptFailureLog = new(gateway.TimeProvider, LogLimiter.DefaultInterval);
    private readonly TaskCompletionSource _allClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Socket? _listenSocket;
    private Task? _accepting;
    private CancellationTokenRegistration _onStarted;
    private int _open;
    private volatile bool _stopping;

    /// <summary>The endpoint the listener is bound to; null until started, or when the listener is off.</summary>
    public IPEndPoint? EndPoint { get; private set; }

    /// <summary>Connections accepted and not yet ended.</summary>
    public int OpenConnections => Volatile.Read(ref _open);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.Tcp.Port == 0 || o.Tcp.Transport != TcpTransport.Sockets)
        {
            return Task.CompletedTask;
        }

        var endPoint = new IPEndPoint(IPAddress.Parse(o.BindAddress), o.Tcp.Port);
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (endPoint.Address.Equals(IPAddress.IPv6Any))
        {
            // As Kestrel listens on [::]: IPv4 clients too.
            socket.DualMode = true;
        }

        try
        {
            socket.Bind(endPoint);
            socket.Listen(Backlog);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();

            // Worded as Kestrel words it, so the host's start-up error names the setting (RunMqttGatewayAsync).
            throw new IOException($"Failed to bind to address {endPoint}: address already in use.", new AddressInUseException(ex.Message, ex));
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        _listenSocket = socket;
        EndPoint = (IPEndPoint)socket.LocalEndPoint!;

        // Accepting waits for the host's start, as Kestrel's does: until then the kernel's backlog holds new connections.
        _onStarted = lifetime.ApplicationStarted.Register(() => _accepting = AcceptLoopAsync(socket));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_listenSocket is not { } socket)
        {
            return;
        }

        _stopping = true;
        await _onStarted.DisposeAsync();
        socket.Dispose();
        if (_accepting is { } accepting)
        {
            await accepting.ConfigureAwait(false);
        }

        if (Volatile.Read(ref _open) == 0)
        {
            _allClosed.TrySetResult();
        }

        try
        {
            await _allClosed.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            var open = gateway.AbortConnections();
            LogAborted(logger, open);
        }
    }

    /// <summary>Runs the MQTT connection on <paramref name="connection"/> (on the thread pool) and closes the socket after it.</summary>
    public void Run(SocketConnection connection)
    {
        Task running;
        try
        {
            var mqtt = new MqttConnection(connection, gateway);
            mqtt.AcceptOn(MqttListener.Tcp);
            running = mqtt.RunAsync();
        }
        catch (Exception ex)
        {
            LogConnectionFailed(logger, ex);
            running = Task.CompletedTask;
        }

        // A continuation, not an awaiting method: one delegate per connection instead of a state machine while it lives.
        running.GetAwaiter().UnsafeOnCompleted(connection.OnRunEnded);
    }

    /// <summary>Called by a connection once its MQTT connection ended and its socket is closed.</summary>
    public void Ended()
    {
        gateway.Sockets.Release();
        if (Interlocked.Decrement(ref _open) == 0 && _stopping)
        {
            _allClosed.TrySetResult();
        }
    }

    /// <summary>
    /// How long to wait before the next accept after one failed with <paramref name="error"/>, the pause before it
    /// having been <paramref name="previous"/> (zero after an accept that succeeded).
    /// </summary>
    internal static TimeSpan PauseAfterAcceptFailure(SocketError error, TimeSpan previous) => error switch
    {
        // A connection reset or given up while it waited in the backlog: the next one may be accepted at once.
        SocketError.ConnectionReset or SocketError.ConnectionAborted => TimeSpan.Zero,

        // Out of file descriptors or buffers: accepting again at once fails again at once, a loop that takes a core.
        _ => previous <= TimeSpan.Zero ? FirstAcceptPause : TimeSpan.FromTicks(Math.Min(previous.Ticks * 2, MaxAcceptPause.Ticks)),
    };

    /// <summary>The value of the <c>error</c> tag of <c>mqtt.connections.accept_failures</c> for <paramref name="error"/>.</summary>
    /// <remarks>
    /// .NET reports both EMFILE (the process's limit) and ENFILE (the system's) as <see cref="SocketError.TooManyOpenSockets"/>,
    /// whose message always reads "Too many open files in system"; the two are told apart only by the limits.
    /// </remarks>
    internal static KeyValuePair<string, object?> AcceptErrorTag(SocketError error) => error switch
    {
        SocketError.TooManyOpenSockets => TooManyOpenFilesTag,
        SocketError.NoBufferSpaceAvailable => NoBufferSpaceTag,
        SocketError.ConnectionReset or SocketError.ConnectionAborted => ResetTag,
        _ => OtherErrorTag,
    };

    private static readonly KeyValuePair<string, object?> TooManyOpenFilesTag = new("error", "too_many_open_files");
    private static readonly KeyValuePair<string, object?> NoBufferSpaceTag = new("error", "no_buffer_space");
    private static readonly KeyValuePair<string, object?> ResetTag = new("error", "reset");
    private static readonly KeyValuePair<string, object?> OtherErrorTag = new("error", "other");

    private async Task AcceptLoopAsync(Socket listenSocket)
    {
        LogListening(logger, EndPoint!);
        var pause = TimeSpan.Zero;
        while (!_stopping)
        {
            Socket accepted;
            try
            {
                accepted = await listenSocket.AcceptAsync().ConfigureAwait(false);
                pause = TimeSpan.Zero;
            }
            catch (Exception ex) when (_stopping && ex is SocketException or ObjectDisposedException)
            {
                break;
            }
            catch (SocketException ex)
            {
                gateway.Metrics.AcceptFailures.Add(1, AcceptErrorTag(ex.SocketErrorCode));
                if (_acceptFailureLog.TryEnter(1, out var suppressed))
                {
                    LogAcceptFailed(logger, ex, ex.SocketErrorCode, suppressed);
                }

                pause = PauseAfterAcceptFailure(ex.SocketErrorCode, pause);
                if (pause > TimeSpan.Zero)
                {
                    // Connections that arrive meanwhile wait in the kernel's backlog; a stop waits out the pause, a second at most.
                    await Task.Delay(pause, gateway.TimeProvider).ConfigureAwait(false);
                }

                continue;
            }

            try
            {
                // As Kestrel's default: small MQTT packets go out at once. Non-blocking: a send or receive that would
                // wait returns WouldBlock, and the connection waits asynchronously instead.
                accepted.NoDelay = true;
                accepted.Blocking = false;
            }
            catch (SocketException)
            {
                // Reset before it was set up.
                accepted.Dispose();
                continue;
            }

            if (!gateway.Sockets.TryAdmit())
            {
                // At the sockets the open-file limit leaves room for: closed before it costs more than this moment's
                // descriptor, so the process keeps the rest of its reserve. The client reads the end of the stream.
                var remote = accepted.RemoteEndPoint;
                accepted.Dispose();
                gateway.Sockets.CountRefusal(remote);
                continue;
            }

            Interlocked.Increment(ref _open);
            new SocketConnection(accepted, this).Start();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "MQTT over TCP listening on {EndPoint} (Mqtt:Tcp:Transport Sockets)")]
    private static partial void LogListening(ILogger logger, IPEndPoint endPoint);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Accepting an MQTT over TCP connection failed ({Error}); {Suppressed} more such failures since the last line (one line per 10 s)")]
    private static partial void LogAcceptFailed(ILogger logger, Exception ex, SocketError error, long suppressed);

    [LoggerMessage(Level = LogLevel.Error, Message = "Starting an MQTT connection failed")]
    private static partial void LogConnectionFailed(ILogger logger, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Shutdown timed out with MQTT over TCP connections still open; aborted {Count}")]
    private static partial void LogAborted(ILogger logger, int count);
}
