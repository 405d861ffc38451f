using System.Net;
using Microsoft.AspNetCore.Connections;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Admits the accepted sockets of the MQTT listeners within what the open-file limit leaves them
/// (<see cref="ConnectionBudget.MaxSockets"/>). Every listener counts its sockets here: the gateway's own TCP accept loop
/// through <see cref="TryAdmit"/> and <see cref="Release"/>, the listeners Kestrel serves (MQTT over TCP on
/// <c>Mqtt:Tcp:Transport</c> Kestrel, TLS, WebSocket) through <see cref="Middleware"/>; so together they stay within
/// the budget. A socket past it is closed as soon as it is accepted, counted
/// (<c>mqtt.connections.refused</c>, reason <c>file_limit</c>) and logged, one line per 10 s.
/// </summary>
/// <param name="metrics">The broker's instruments.</param>
/// <param name="timeProvider">The clock of the log line's interval.</param>
/// <param name="logger">The gateway's logger: the refusal line keeps the category it has always had.</param>
internal sealed partial class SocketAdmission(MqttMetrics metrics, TimeProvider timeProvider, ILogger logger)
{
    private readonly LogLimiter _refusedLog = new(timeProvider, LogLimiter.DefaultInterval);
    private int _open;

    // Unlimited until the gateway's start computes the budget (Limit).
    private int _max = int.MaxValue;
    private long _fileLimit;

    /// <summary>The accepted sockets the open-file limit leaves room for (<see cref="int.MaxValue"/> until <see cref="Limit"/>).</summary>
    public int MaxSockets => Volatile.Read(ref _max);

    /// <summary>Sockets of the MQTT listeners accepted and not yet closed.</summary>
    public int OpenSockets => Volatile.Read(ref _open);

    /// <summary>Holds the sockets to <paramref name="budget"/>'s <see cref="ConnectionBudget.MaxSockets"/> from now on.</summary>
    public void Limit(ConnectionBudget budget)
    {
        Volatile.Write(ref _fileLimit, budget.FileLimit);
        Volatile.Write(ref _max, budget.MaxSockets);
    }

    /// <summary>
    /// Counts a socket a listener accepted; false (and not counted) when <see cref="MaxSockets"/> are open, when the
    /// listener closes it at once and calls <see cref="CountRefusal"/>. Every socket admitted is given back with
    /// <see cref="Release"/>.
    /// </summary>
    public bool TryAdmit()
    {
        if (Interlocked.Increment(ref _open) <= Volatile.Read(ref _max))
        {
            return true;
        }

        Interlocked.Decrement(ref _open);
        return false;
    }

    /// <summary>Gives back a socket <see cref="TryAdmit"/> admitted, once it is closed.</summary>
    public void Release() => Interlocked.Decrement(ref _open);

    /// <summary>Counts and logs (one line per 10 s) a socket a listener closed because <see cref="TryAdmit"/> refused it.</summary>
    public void CountRefusal(EndPoint? remote)
    {
        metrics.ConnectionsRefused.Add(1, CloseReason.FileLimit.MetricTag());
        if (_refusedLog.TryEnter(1, out var suppressed))
        {
            LogRefused(logger, remote, MaxSockets, Volatile.Read(ref _fileLimit), suppressed);
        }
    }

    /// <summary>
    /// Kestrel connection middleware of the MQTT listeners Kestrel serves: the same admission as the gateway's own TCP
    /// transport. A refused connection is closed before TLS or HTTP.
    /// </summary>
    public ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        if (!TryAdmit())
        {
            CountRefusal(connection.RemoteEndPoint);
            connection.Abort();
            return;
        }

        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            Release();
        }
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "MQTT connection from {Remote} refused (file_limit): {Sockets} sockets open, all the open file limit {Limit} leaves room for; socket closed when accepted. {Suppressed} more since the last line (one line per 10 s)")]
    private static partial void LogRefused(ILogger logger, EndPoint? remote, int sockets, long limit, long suppressed);
}
