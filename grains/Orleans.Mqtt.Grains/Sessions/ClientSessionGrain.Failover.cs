using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Grains;

// An activation whose stored state is older than its routes: the session's home was lost (or this silo was away).
internal sealed partial class ClientSessionGrain
{
    /// <summary>
    /// Takes the newest copy of the session any active silo holds (this silo's own record among them) if it holds
    /// everything the session acknowledged: its state version is at least the routes' <see cref="ClientRoutes.StateBase"/>,
    /// the state that was durable when the routes last changed. A home that died in the middle of a save leaves routes
    /// one change ahead of every copy; that change was not acknowledged, and the copy's own subscriptions are sent
    /// out again with a newer version. With no such copy (every silo that held one is gone, or only an older copy came
    /// back) the session is lost: it starts afresh, so that its client is told Session Present 0 and subscribes again,
    /// never Session Present 1 over a queue that is gone; a connection the routes still name is closed so that its
    /// client learns it too.
    /// </summary>
    /// <returns>The routes to continue from (null: the session was lost and reset) and whether a copy was adopted.</returns>
    private async Task<(ClientRoutes? Routes, bool Recovered)> RecoverAsync(ClientRoutes replicated)
    {
        var best = _hasSession ? S : null;
        foreach (var copy in await sessionReplicator.FetchAllAsync(ClientId))
        {
            if (copy.State is { } copied && (best is null || copy.Version > best.StateVersion))
            {
                best = copied;
            }
        }

        if (best is not null && best.StateVersion >= replicated.StateBase)
        {
            if (!ReferenceEquals(best, S))
            {
                // The local record's ETag stays: the adopted state is written over it.
                state.State = best;
            }

            _hasSession = true;

            // The routes' presence and version are taken below (RestoreFromReplica), not their subscriptions.
            S.RouteVersion = replicated.Version;
            metrics.SessionsFailedOver.Add(1);
            LogRecovered(logger, ClientId, replicated.Home, S.StateVersion, S.Queue.Count, S.Inflight.Count, replicated.Presence is { } p ? $"{p.GatewayId} {p.ConnectionId}" : "none");
            return (replicated, true);
        }

        metrics.SessionsLost.Add(1);
        LogSessionLost(logger, ClientId, replicated.Home, replicated.StateBase, best?.StateVersion ?? 0);
        if (replicated.Presence is { } connected)
        {
            // Its client still believes in the session: closed, it reconnects and is told Session Present 0.
            _ = CloseLostConnectionAsync(connected);
        }

        ResetSession();
        _presence = null;
        S.RouteVersion = NextVersion(replicated.Version);
        await SaveAndReplicateAsync();
        return (null, false);
    }

    private async Task CloseLostConnectionAsync(GatewayPresence connected)
    {
        try
        {
            await connected.Gateway.Disconnect(connected.ConnectionId, CloseReason.SessionUnavailable.DisconnectReasonCode());
        }
        catch (Exception ex)
        {
            LogGatewayCallFailed(logger, ex, ClientId, connected.GatewayId);
        }
    }

    /// <summary>
    /// Asks the gateway to close the client's connection so that it reconnects and gets its in-flight messages again
    /// (its gateway does not publish the will for it). The session keeps the connection as its presence until then:
    /// should the request not arrive, the connection is still served, and its next CONNECT takes it over as usual.
    /// </summary>
    private async Task CloseToResumeAsync(GatewayPresence connected)
    {
        LogClosingToResume(logger, ClientId, S.Inflight.Count, connected.GatewayId, connected.ConnectionId);
        try
        {
            await connected.Gateway.Disconnect(connected.ConnectionId, CloseReason.SessionFailedOver.DisconnectReasonCode());
        }
        catch (Exception ex)
        {
            LogGatewayCallFailed(logger, ex, ClientId, connected.GatewayId);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session of client {ClientId} came to this silo (failed over or handed over) with {Inflight} messages in flight: its connection {ConnectionId} on gateway {GatewayId} is closed so that the client resumes and gets them again")]
    private static partial void LogClosingToResume(ILogger logger, string clientId, int inflight, string gatewayId, long connectionId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session of client {ClientId} recovered from a copy after its home {Home} was lost (state version {StateVersion}, {Queued} queued, {Inflight} in flight, connection: {Connection}); this silo is its home now")]
    private static partial void LogRecovered(ILogger logger, string clientId, string? home, long stateVersion, int queued, int inflight, string connection);

    [LoggerMessage(Level = LogLevel.Error, Message = "Session of client {ClientId} lost with its home {Home}: no surviving silo holds its state at version {StateBase} or newer (newest found: {Found}); it starts afresh and its client is told Session Present 0")]
    private static partial void LogSessionLost(ILogger logger, string clientId, string? home, long stateBase, long found);
}
