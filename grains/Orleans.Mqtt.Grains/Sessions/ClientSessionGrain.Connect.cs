using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Grains;

// A connection arrives (taking over an older one of the same client id) or ends.
internal sealed partial class ClientSessionGrain
{
    public async Task<ConnectResult> Connect(ConnectRequest request, CancellationToken cancellationToken = default)
    {
        // The gateway already refused the client (Mqtt:SessionConnectTimeout): taking the connection now would only
        // take the session from a newer connection of the same client, or leave it connected to one that is closed.
        cancellationToken.ThrowIfCancellationRequested();
        MqttMessage? replacedWill = null;
        GatewayPresence? replaced = _presence;

        // A takeover that continues the session tells the older connection only once this one is committed and
        // saved, and only if the gateway still waits for it: the cancellation of a call that already runs arrives
        // while it runs, and many CONNECTs of one client id queued at the session past the bound would otherwise each
        // close the connection before them and then end their own, leaving none connected. A clean start ends the
        // session the older connection uses, so that one is told at once.
        var keep = replaced is not null && !request.CleanStart ? new OlderConnection(this) : null;
        if (replaced is { } old)
        {
            // Takeover: the older connection goes, wherever it is (MQTT 5: DISCONNECT 0x8E before closing).
            // Its will goes out unless it has a delay and this connection continues the session [MQTT-3.1.3-9].
            replacedWill = S.WillDelayInterval > 0 && !request.CleanStart ? null : S.Will;
            S.Will = null;
            _presence = null;
            LogTakeover(logger, ClientId, old.GatewayId, old.ConnectionId);
            if (keep is null)
            {
                await TellTakenOverAsync(old);
            }
        }
        else if (_hasSession && IsExpired())
        {
            EndSession();
        }

        if (request.CleanStart)
        {
            // A clean start ends the previous session: a will still waiting for its delay goes out now.
            EndSession();
        }
        else
        {
            // A new connection to the session before the will delay has passed: the will is not sent [MQTT-3.1.3-9].
            CancelPendingWill();
        }

        var sessionPresent = _hasSession && !request.CleanStart;

        _hasSession = true;
        // Shared with the route table's other presences of the same gateway (the routes below are held as they are).
        _presence = routeTable.Intern(request.Presence);
        S.ReceiveMaximum = request.ReceiveMaximum == 0 ? ushort.MaxValue : request.ReceiveMaximum;
        S.Will = request.Will;
        S.UserName = request.UserName;
        S.WillDelayInterval = request.WillDelayInterval;
        S.SessionExpiryInterval = request.SessionExpiryInterval;
        S.DisconnectedAtUtc = null;
        S.RouteVersion = NextVersion(S.RouteVersion);
        KeepWhileConnected();

        var resend = new List<Delivery>(S.Inflight.Count);
        foreach (var m in S.Inflight)
        {
            resend.Add(m.Released
                ? new Delivery(request.Presence.ConnectionId, m.Delivery.Message, 2, false, m.PacketId, Kind: DeliveryKind.PubRel)
                : ToDelivery(m, dup: true));
        }

        Pump(resend);
        try
        {
            await CommitOwnerAsync(request.Presence, replaced);
            await SaveAndReplicateAsync();
        }
        catch (Exception) when (keep is not null)
        {
            // The session no longer counts the older connection as its own: it must not stay open unaware of it.
            await TellTakenOverAsync(keep.Presence);
            throw;
        }

        if (keep is not null)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                await KeepOlderConnectionAsync(keep, request.Presence);
                cancellationToken.ThrowIfCancellationRequested();
            }

            await TellTakenOverAsync(keep.Presence);
        }

        if (cancellationToken.IsCancellationRequested)
        {
            await EndAbandonedConnectionAsync(request.Presence.ConnectionId, replacedWill);
            cancellationToken.ThrowIfCancellationRequested();
        }

        return new ConnectResult(sessionPresent, [.. resend], replacedWill is null ? null : Stamp(replacedWill));
    }

    /// <summary>
    /// The gateway gave up on a Connect that was taking the session over from a live connection before that
    /// connection was told: the session goes back to it as it was (its will, its settings, the messages moved into the
    /// window for the new connection back to the front of the queue), with its ownership record and routes written
    /// again. The older connection only missed the QoS 0 messages routed to the abandoned one meanwhile.
    /// </summary>
    private async Task KeepOlderConnectionAsync(OlderConnection older, GatewayPresence abandoned)
    {
        LogTakeoverAbandoned(logger, ClientId, abandoned.ConnectionId, older.Presence.GatewayId, older.Presence.ConnectionId);
        var inflight = S.Inflight;
        if (inflight.Count > older.InflightCount)
        {
            // Never sent: the abandoned connection's CONNACK, which would have carried them, was not sent either.
            for (var i = inflight.Count - 1; i >= older.InflightCount; i--)
            {
                S.Queue.Insert(0, inflight[i].Delivery);
            }

            inflight.RemoveRange(older.InflightCount, inflight.Count - older.InflightCount);
            S.LastPacketId = older.LastPacketId;
        }

        _presence = older.Presence;
        S.Will = older.Will;
        S.ReceiveMaximum = older.ReceiveMaximum;
        S.UserName = older.UserName;
        S.WillDelayInterval = older.WillDelayInterval;
        S.SessionExpiryInterval = older.SessionExpiryInterval;
        S.RouteVersion = NextVersion(S.RouteVersion);
        await CommitOwnerAsync(older.Presence, replaced: abandoned);
        await SaveAndReplicateAsync();
    }

    /// <summary>What a takeover changes of the connected session, kept to give it back if the takeover is abandoned.</summary>
    private sealed class OlderConnection(ClientSessionGrain session)
    {
        public GatewayPresence Presence { get; } = session._presence!;
        public MqttMessage? Will { get; } = session.S.Will;
        public ushort ReceiveMaximum { get; } = session.S.ReceiveMaximum;
        public string? UserName { get; } = session.S.UserName;
        public uint WillDelayInterval { get; } = session.S.WillDelayInterval;
        public uint SessionExpiryInterval { get; } = session.S.SessionExpiryInterval;
        public int InflightCount { get; } = session.S.Inflight.Count;
        public ushort LastPacketId { get; } = session.S.LastPacketId;
    }

    /// <summary>
    /// Tells the gateway of a connection that another took the session over (MQTT 5: DISCONNECT 0x8E before closing),
    /// waiting at most <c>Mqtt:TakeoverNoticeTimeout</c>: its gateway may be gone or stuck (a killed gateway's clients
    /// reconnect through another), and waiting out Orleans' response timeout for it would hold the new connection. The
    /// notice goes on unawaited; ownership already names the new connection.
    /// </summary>
    private async Task TellTakenOverAsync(GatewayPresence old)
    {
        var notice = old.Gateway.Disconnect(old.ConnectionId, CloseReason.SessionTakenOver.DisconnectReasonCode());
        try
        {
            await notice.WaitAsync(options.Value.TakeoverNoticeTimeout, timeProvider);
        }
        catch (TimeoutException)
        {
            LogTakeoverNoticeUnanswered(logger, ClientId, old.GatewayId, options.Value.TakeoverNoticeTimeout);
            _ = notice.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
        catch (Exception ex)
        {
            LogGatewayCallFailed(logger, ex, ClientId, old.GatewayId);
        }
    }

    /// <summary>
    /// The gateway gave up on this Connect while it ran and refused the client: the connection it took is closed, so
    /// it ends here as a lost one (its will and the session expiry follow, as for any connection that dropped). The
    /// gateway's own <see cref="Disconnect"/> for it, sent when it gave up, then finds nothing to do.
    /// </summary>
    private async Task EndAbandonedConnectionAsync(long connectionId, MqttMessage? replacedWill)
    {
        LogConnectAbandoned(logger, ClientId, connectionId);
        if (replacedWill is not null)
        {
            PublishWill(Stamp(replacedWill));
        }

        if (await Disconnect(connectionId, DisconnectKind.ConnectionLost) is { } will)
        {
            PublishWill(will);
        }
    }

    public async Task<MqttMessage?> Disconnect(long connectionId, DisconnectKind kind, uint? sessionExpiryInterval = null, CancellationToken cancellationToken = default)
    {
        if (_presence?.ConnectionId != connectionId)
        {
            return null;
        }

        var ending = _presence;
        _presence = null;
        await ReleaseOwnerAsync(ending);
        if (sessionExpiryInterval is { } expiry)
        {
            S.SessionExpiryInterval = expiry;
        }

        var will = kind == DisconnectKind.Normal ? null : S.Will;
        S.Will = null;
        DelayDeactivation(TimeSpan.Zero);
        if (!Persistent)
        {
            RedispatchShared();
            ResetSession();
            _hasSession = false;
            S.RouteVersion = NextVersion(S.RouteVersion);
            await SaveAndReplicateAsync();
            DeactivateOnIdle();
            return will is null ? null : Stamp(will);
        }

        S.DisconnectedAtUtc = UtcNow;
        MqttMessage? publishNow = null;
        if (will is not null)
        {
            // The will waits for its delay, or for the end of the session if that comes first [MQTT-3.1.3-9].
            var delay = Math.Min(S.WillDelayInterval, S.SessionExpiryInterval);
            if (delay == 0)
            {
                publishNow = Stamp(will);
            }
            else
            {
                S.PendingWill = will;
                S.WillDueAtUtc = S.DisconnectedAtUtc.Value.AddSeconds(delay);
                ArmWillTimer();
            }
        }

        S.RouteVersion = NextVersion(S.RouteVersion);
        await SaveAndReplicateAsync();
        return publishNow;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Client {ClientId} taken over from gateway {GatewayId} connection {ConnectionId}")]
    private static partial void LogTakeover(ILogger logger, string clientId, string gatewayId, long connectionId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway {GatewayId} did not confirm closing client {ClientId}'s older connection within {Timeout} (Mqtt:TakeoverNoticeTimeout); the new connection goes on")]
    private static partial void LogTakeoverNoticeUnanswered(ILogger logger, string clientId, string gatewayId, TimeSpan timeout);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId}'s connection {ConnectionId} was refused by its gateway (Mqtt:SessionConnectTimeout) before the session told the connection it was taking over; gateway {GatewayId} connection {OlderConnectionId} keeps the session")]
    private static partial void LogTakeoverAbandoned(ILogger logger, string clientId, long connectionId, string gatewayId, long olderConnectionId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId}'s connection {ConnectionId} was refused by its gateway while the session took it (Mqtt:SessionConnectTimeout); it ends as lost")]
    private static partial void LogConnectAbandoned(ILogger logger, string clientId, long connectionId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Call to gateway {GatewayId} for client {ClientId} failed")]
    private static partial void LogGatewayCallFailed(ILogger logger, Exception ex, string clientId, string gatewayId);
}
