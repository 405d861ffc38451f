using System.Diagnostics;
using MQTTnet.Adapter;
using MQTTnet.Exceptions;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

// CONNECT: the first packet, its checks and refusals, the session grain taking the connection, and CONNACK.
internal sealed partial class MqttConnection
{
    private async Task HandleFirstPacketAsync(ReceivedMqttPacket received)
    {
        if (!MqttFrame.TryReadProtocol(received.Body, out var name, out var level))
        {
            Reject(CloseReason.MalformedPacket, "CONNECT too short");
            return;
        }

        if (!((name == "MQTT" && level is 4 or 5) || (name == "MQIsdp" && level == 3)))
        {
            // [MQTT-3.1.2-2]: answer an unsupported protocol level with return code 0x01, then close.
            _protocolVersion = MqttProtocolVersion.V311;
            RefuseConnect(CloseReason.UnsupportedProtocolVersion, $"protocol {name} level {level}");
            return;
        }

        if (level is 3 or 4 && MqttFrame.IsEmptyClientIdWithoutCleanSession(received.Body))
        {
            // MQTT 3.1.1 [MQTT-3.1.3-8]: an empty client id needs clean session: CONNACK 0x02, then close.
            _protocolVersion = MqttProtocolVersion.V311;
            RefuseConnect(CloseReason.ClientIdRejected, "empty client id without clean session");
            return;
        }

        MqttConnectPacket connect;
        try
        {
            _protocolVersion = PacketFormatters.VersionOf(name, level);
            _v5 = _protocolVersion == MqttProtocolVersion.V500;
            connect = (MqttConnectPacket)Formatter.Decode(received);
        }
        catch (Exception ex) when (ex is MqttProtocolViolationException or ArgumentException or InvalidOperationException or InvalidCastException or IndexOutOfRangeException)
        {
            Reject(CloseReason.MalformedPacket, ex.Message);
            return;
        }

        await HandleConnectAsync(connect);
    }

    private async Task HandleConnectAsync(MqttConnectPacket connect)
    {
        if (_gateway.Tracing?.StartConnect(connect.ClientId) is not { } span)
        {
            await ConnectAsync(connect);
            return;
        }

        // Current while the CONNECT is handled, so the session's grain call (and its ownership commit) carry it.
        using (span)
        {
            await ConnectAsync(connect);
            if (!_open)
            {
                span.SetStatus(ActivityStatusCode.Error, "refused");
            }
        }
    }

    private async Task ConnectAsync(MqttConnectPacket connect)
    {
        if (_v5)
        {
            // Known before any CONNACK, refusals included: nothing larger may be sent to this client [MQTT-3.2.2-19].
            _clientMaxPacketSize = connect.MaximumPacketSize;
        }

        if (_gateway.IsStopping)
        {
            RefuseConnect(CloseReason.ServerShuttingDown, "shutting down");
            return;
        }

        if (RefusedByLimits(connect))
        {
            return;
        }

        var clientId = connect.ClientId ?? string.Empty;
        string? assigned = null;
        if (clientId.Length == 0)
        {
            if (!_v5 && !connect.CleanSession)
            {
                // MQTT 3.1.1 [MQTT-3.1.3-8]: an empty client id needs clean session.
                RefuseConnect(CloseReason.ClientIdRejected, "empty client id without clean session");
                return;
            }

            clientId = assigned = "auto-" + Guid.NewGuid().ToString("N");
        }

        if (_v5 && !string.IsNullOrEmpty(connect.AuthenticationMethod))
        {
            RefuseConnect(CloseReason.BadAuthenticationMethod, $"authentication method '{connect.AuthenticationMethod}' is not supported");
            return;
        }

        ConnectIdentity identity;
        using (MqttTracing.StartChild(MqttTracing.Operations.Authenticate, clientId))
        {
            identity = await _gateway.Authenticator.AuthenticateAsync(clientId, connect.Username, connect.Password, ClientCertificate);
        }

        switch (identity.Result)
        {
            case AuthResult.BadCredentials:
                RefuseConnect(CloseReason.BadCredentials, identity.Detail ?? $"bad user name or password for '{connect.Username}'");
                return;
            case AuthResult.NotAuthorized:
                RefuseConnect(CloseReason.NotAuthorized, identity.Detail ?? "anonymous clients are not allowed");
                return;
        }

        AdoptIdentity(clientId, identity);

        MqttMessage? will = null;
        if (connect.WillFlag)
        {
            if (!MqttTopic.IsValidTopicName(connect.WillTopic ?? string.Empty))
            {
                RefuseConnect(CloseReason.InvalidTopic, $"invalid will topic '{connect.WillTopic}'");
                return;
            }

            will = new MqttMessage
            {
                Topic = connect.WillTopic!,
                Payload = connect.WillMessage ?? [],
                Qos = (byte)connect.WillQoS,
                Retain = connect.WillRetain,
                SenderClientId = clientId,
                Properties = _v5 ? MessageMapping.WillProperties(connect) : null,
            };
        }

        AuthorizeConnect(clientId, UserName, CredentialRules, ref will);
        if (!_gateway.TryAcquireSessionSlot())
        {
            RefuseConnect(CloseReason.MaxConnections, _gateway.MaxConnectionsLowered
                ? $"connection limit {_gateway.MaxConnections} reached (Mqtt:MaxConnections lowered to the open file limit)"
                : $"Mqtt:MaxConnections {_gateway.MaxConnections} reached");
            return;
        }

        _hasSessionSlot = true;
        _clientId = clientId;
        _session = _gateway.Session(clientId);
        var expiry = _v5 ? connect.SessionExpiryInterval : connect.CleanSession ? 0u : uint.MaxValue;
        ConnectResult result;
        var timeout = _gateway.Options.SessionConnectTimeout;
        var giveUp = new CancellationTokenSource();
        var call = _session.Connect(
            new ConnectRequest(
                new GatewayPresence(_gateway.Reference, _gateway.Id, Id, _gateway.LeaseId),
                connect.CleanSession,
                expiry,
                will,
                (byte)_protocolVersion,
                connect.ReceiveMaximum,
                _v5 ? connect.WillDelayInterval : 0,
                UserName),
            giveUp.Token);
        var lost = _gateway.SiloLoss.CallsInFlight;
        try
        {
            result = await call.WaitAsync(timeout, _gateway.TimeProvider, lost);
        }
        catch (Exception ex) when (ex is TimeoutException || ex is OperationCanceledException && lost.IsCancellationRequested && !call.IsCompleted)
        {
            // Most likely the session's silo was killed and is not yet known dead (or the gateway lost its connection
            // to a silo while the call was under way, Mqtt:SiloLossGrace): the client retries, and the retry finds the
            // session once it is. The call may still complete on the session: it must not stay connected.
            var (bound, setting) = ex is TimeoutException ? (timeout, "Mqtt:SessionConnectTimeout") : (_gateway.SiloLoss.Grace, "Mqtt:SiloLossGrace");
            LogSessionConnectTimedOut(_logger, clientId, Id, bound, setting);
            await giveUp.CancelAsync();
            _ = EndAbandonedConnectAsync(_session, call, clientId);
            _session = null;
            RefuseConnect(CloseReason.SessionConnectTimeout, $"the session did not take the connection within {bound} ({setting})");
            return;
        }
        catch (Exception ex)
        {
            // The session may have taken the connection before failing (its ownership commit or its write failed).
            LogSessionCallFailed(_logger, ex, clientId);
            _ = EndAbandonedConnectAsync(_session, call, clientId);
            _session = null;
            RefuseConnect(CloseReason.SessionUnavailable, "session not available");
            return;
        }
        finally
        {
            giveUp.Dispose();
        }

        var options = _gateway.Options;
        var keepAlive = connect.KeepAlivePeriod;
        ushort serverKeepAlive = 0;
        if (_v5 && options.MaxKeepAlive > 0 && (keepAlive == 0 || keepAlive > options.MaxKeepAlive))
        {
            // [MQTT-3.2.2-21]: the client must use the Server Keep Alive instead of the value it sent.
            keepAlive = serverKeepAlive = (ushort)options.MaxKeepAlive;
        }

        _keepAliveTicks = keepAlive == 0 ? 0 : TimeSpan.FromSeconds(keepAlive * 1.5).Ticks;
        if (_v5)
        {
            _connectSessionExpiry = connect.SessionExpiryInterval;
            _clientMaxPacketSize = connect.MaximumPacketSize;
            if (connect.TopicAliasMaximum > 0)
            {
                _outboundAliases = new OutboundTopicAliases(connect.TopicAliasMaximum);
            }
        }

        var connAck = ReplyPackets.ConnAck(result.SessionPresent, _v5 ? assigned : null, options, serverKeepAlive);

        (CloseReason Reason, byte ReasonCode)? closeNow;
        lock (_gate)
        {
            _writer.Enqueue(new Outgoing(connAck, null));
            foreach (var d in result.Resend)
            {
                _writer.Enqueue(new Outgoing(null, d));
            }

            if (_pendingBeforeConnAck is { } pending)
            {
                foreach (var d in pending)
                {
                    _writer.Enqueue(new Outgoing(null, d));
                }

                _pendingBeforeConnAck = null;
            }

            _open = true;
            closeNow = _closeAfterConnAck;
        }

        _gateway.Metrics.ConnectionsAccepted.Add(1);
        _gateway.Metrics.ConnectionsActive.Add(1);
        // The end point, not its text: formatted only when the (Debug) line is written, not on every connect.
        LogConnected(_logger, clientId, _transport.RemoteEndPoint, _protocolVersion, result.SessionPresent, _v5 && will is not null ? connect.WillDelayInterval : 0);
        if (closeNow is { } close)
        {
            CloseByServer(close.Reason, close.ReasonCode);
        }

        if (result.WillOfReplacedConnection is { } replacedWill)
        {
            await PublishAsync(replacedWill);
        }
    }

    /// <summary>
    /// After the gateway refused the client because its session's <c>Connect</c> took too long or failed: tells the session that
    /// this connection is gone, once the call is over (a session that took the connection late would otherwise stay
    /// connected to a closed connection: no will, no expiry, until the next takeover). The session ignores it when the
    /// connection never took the session or a newer one already took it over; what it hands back (the will of a
    /// connection the late one replaced, this connection's own will) is published as for any connection lost.
    /// </summary>
    private async Task EndAbandonedConnectAsync(IClientSessionGrain session, Task<ConnectResult> call, string clientId)
    {
        try
        {
            if ((await call).WillOfReplacedConnection is { } replacedWill)
            {
                await PublishAsync(replacedWill);
            }
        }
        catch (Exception)
        {
            // Failed or cancelled: the session did not take the connection, or ended it itself when it saw the cancellation.
        }

        try
        {
            var will = await session.Disconnect(Id, DisconnectKind.ConnectionLost);
            _gateway.Metrics.ConnectsAbandoned.Add(1);
            if (will is not null)
            {
                await PublishAsync(will);
            }
        }
        catch (Exception ex)
        {
            LogSessionCallFailed(_logger, ex, clientId);
        }
    }

    private void RefuseConnect(CloseReason reason, string detail)
    {
        _closing = true;
        _gateway.Metrics.ConnectionsRefused.Add(1, reason.MetricTag());
        if (WithinConnectionLogBudget())
        {
            LogRefused(_logger, Remote, reason.Tag(), detail);
        }
        var connAck = ReplyPackets.ConnAckRefused(reason, _v5, _clientMaxPacketSize, detail);
        lock (_gate)
        {
            _writer.Enqueue(new Outgoing(connAck, null, Terminal: true));
        }
    }
}
