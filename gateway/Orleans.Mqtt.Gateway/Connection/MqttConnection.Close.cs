using MQTTnet.Packets;
using MQTTnet.Protocol;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

// Endings: the client's DISCONNECT, the server closing (CloseReason), timeouts, bad input, and telling the session.
internal sealed partial class MqttConnection
{
    /// <summary>Closes the connection from the server side; MQTT 5 clients get a DISCONNECT with the reason's code first.</summary>
    public void CloseByServer(CloseReason reason) => CloseByServer(reason, reason.DisconnectReasonCode());

    /// <summary>
    /// Closes the connection because its session failed over to another silo with messages in flight: the client
    /// reconnects and gets them again. Nothing went wrong on the client's side, so its will is not published.
    /// </summary>
    public void CloseToResume()
    {
        lock (_gate)
        {
            if (!_closing)
            {
                _disconnectKind ??= DisconnectKind.Normal;
            }
        }

        CloseByServer(CloseReason.SessionFailedOver);
    }

    /// <summary>Closes the connection from the server side with the DISCONNECT reason code a silo chose.</summary>
    public void CloseByServer(CloseReason reason, byte reasonCode)
    {
        string state;
        lock (_gate)
        {
            if (_closing)
            {
                return;
            }

            if (!_open && _session is not null)
            {
                _closeAfterConnAck ??= (reason, reasonCode);
                return;
            }

            // Queued before _closing is set: a read loop that sees _closing completes the outbox behind this packet.
            state = _open ? "connected" : "before CONNECT";
            if (_v5 && _open)
            {
                _writer.Enqueue(new Outgoing(ReplyPackets.Disconnect(reason, reasonCode, _clientMaxPacketSize), null, Terminal: true));
            }
            else
            {
                _writer.Enqueue(new Outgoing(null, null, Terminal: true));
            }

            _closing = true;
        }

        _gateway.Metrics.ConnectionsClosed.Add(1, reason.MetricTag());
        if (WithinConnectionLogBudget())
        {
            LogClosedByServer(_logger, _clientId, Remote, reason.Tag(), reason.LogText(), reasonCode, state);
        }
        _transport.Transport.Input.CancelPendingRead();
    }

    /// <summary>
    /// Closes the connection when no CONNECT came in time, a packet took longer than <c>Mqtt:PacketReadTimeout</c> to
    /// arrive, or the keep alive ran out; also reports the log lines held back. Called by the gateway's sweep.
    /// </summary>
    public void CheckTimeouts(long now)
    {
        FlushSuppressedLogs(closing: false);
        var elapsed = _gateway.TimeProvider.GetElapsedTime(Volatile.Read(ref _lastActivity), now);
        if (!_open)
        {
            if (_gateway.TimeProvider.GetElapsedTime(_createdAt, now) > _gateway.Options.ConnectTimeout && _session is null)
            {
                CloseByServer(CloseReason.ConnectTimeout);
            }

            return;
        }

        if (PartialPacketTimedOut(now))
        {
            // Keep alive 0 (or a long one) must not let a client hold a partly sent packet, and its buffer, for ever.
            CloseByServer(CloseReason.PacketReadTimeout);
            return;
        }

        // [MQTT-3.1.2-22] (3.1.1: MQTT-3.1.2-24): one and a half times the keep alive without a packet closes the connection.
        if (_keepAliveTicks > 0 && elapsed.Ticks > _keepAliveTicks)
        {
            CloseByServer(CloseReason.KeepAliveTimeout);
        }
    }

    private void HandleDisconnect(MqttDisconnectPacket disconnect, ArraySegment<byte> body)
    {
        uint? sessionExpiry = null;

        // MQTTnet decodes an absent Session Expiry Interval as 0, and 0 is also a value a client sends on purpose (end
        // the session now), so the property bytes decide whether it was there.
        if (_v5 && body.Count > 1 && MqttPropertyScan.Contains(body, 1, MqttPropertyScan.SessionExpiryInterval))
        {
            sessionExpiry = disconnect.SessionExpiryInterval;
        }

        if (sessionExpiry > 0 && _connectSessionExpiry == 0)
        {
            // MQTT 5 section 3.14.2.2.2: a session that ends with its connection cannot be given an expiry at
            // DISCONNECT. The end is abnormal: no disconnect kind is recorded, so the will is published.
            Reject(CloseReason.ProtocolError, $"DISCONNECT sets Session Expiry Interval {sessionExpiry} after CONNECT set 0");
            return;
        }

        _disconnectSessionExpiry = sessionExpiry;
        _disconnectKind = _v5 && disconnect.ReasonCode == MqttDisconnectReasonCode.DisconnectWithWillMessage
            ? DisconnectKind.NormalWithWill
            : DisconnectKind.Normal;
        _closing = true;
        _writer.Enqueue(new Outgoing(null, null, Terminal: true));
    }

    /// <summary>Counts and logs bad input, then closes the connection for it.</summary>
    private void Reject(CloseReason reason, string detail)
    {
        CountRejected(reason, detail);
        CloseByServer(reason);
    }

    /// <summary>Counts and logs bad input; the caller answers it (a failing acknowledgement, or closing).</summary>
    private void CountRejected(CloseReason reason, string detail)
    {
        _gateway.Metrics.PacketsRejected.Add(1, reason.MetricTag());
        if (ShouldLogBadInput() && WithinConnectionLogBudget())
        {
            LogRejected(_logger, _clientId, Remote, reason.Tag(), detail);
        }
    }

    private async Task EndSessionAsync()
    {
        FlushSuppressedLogs(closing: true);
        if (_hasSessionSlot)
        {
            _gateway.ReleaseSessionSlot();
        }

        if (_session is null)
        {
            return;
        }

        if (_open)
        {
            _gateway.Metrics.ConnectionsActive.Add(-1);
        }

        // Bounded and asked once more (a second Disconnect of this connection finds it gone and does nothing); a
        // session that never answers keeps the connection as its own until the next CONNECT of the client or the
        // sweep of dead gateways.
        var kind = _disconnectKind ?? DisconnectKind.ConnectionLost;
        var (_, will) = await CallBoundedAsync(
            GrainCall.Disconnect,
            (_session, Id, kind, _disconnectSessionExpiry),
            static (s, cancellationToken) => s._session.Disconnect(s.Id, s.kind, s._disconnectSessionExpiry, cancellationToken),
            retry: true);
        if (will is not null)
        {
            await PublishAsync(will);
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            LogDisconnected(_logger, _clientId, _transport.RemoteEndPoint, kind, _disconnectSessionExpiry?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unchanged");
        }
    }
}
