using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using System.Text.Unicode;
using Microsoft.AspNetCore.Connections;
using MQTTnet.Adapter;
using MQTTnet.Exceptions;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using Orleans.Mqtt.Gateway.Codec;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// One client connection: the MQTT protocol state machine of the gateway. It decodes packets with MQTTnet's
/// formatter, hands every PUBLISH to its topic shard and every session change to the client's session grain, and
/// writes what silos push to it. It holds only connection state: the session lives in the grain.
/// </summary>
internal sealed partial class MqttConnection : IThreadPoolWorkItem
{
    private static readonly KeyValuePair<string, object?>[] QosTags =
    [
        new("qos", 0),
        new("qos", 1),
        new("qos", 2),
    ];

    private static readonly KeyValuePair<string, object?> ExpiredTag = new("reason", "expired");
    private static readonly KeyValuePair<string, object?> TooLargeForClientTag = new("reason", "packet_too_large_for_client");

    private readonly ConnectionContext _transport;
    private readonly MqttGateway _gateway;
    private readonly ILogger _logger;
    private readonly ConnectionOutbox<Outgoing> _outbox = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private readonly long _createdAt;
    // Unknown until CONNECT; the formatter for it is shared (see PacketFormatters).
    private MqttProtocolVersion _protocolVersion;
    private List<Delivery>? _pendingBeforeConnAck;
    // A close asked for while the session grain was still accepting the CONNECT (a takeover racing this connect):
    // done right after CONNACK, so the client learns the reason instead of seeing CONNACK and a bare close.
    private (byte ReasonCode, string Reason)? _closeAfterConnAck;
    private IClientSessionGrain? _session;
    private string? _clientId;
    private bool _v5;
    private bool _open;
    private bool _hasSessionSlot;
    private long _lastActivity;
    private long _keepAliveTicks;
    private int _pendingWrites;
    private DisconnectKind? _disconnectKind;
    private volatile bool _closing;

    // MQTT 5 connection state, fixed at CONNECT.
    private uint _connectSessionExpiry;
    private uint _clientMaxPacketSize;
    private OutboundTopicAliases? _outboundAliases;

    // Read loop only: the topics the client set up for its aliases, and the inbound QoS 1/2 publishes not yet
    // acknowledged (QoS 1 until PUBACK, QoS 2 from PUBREC until PUBREL) that Receive Maximum counts.
    private HashSet<ushort>? _inboundQos2;
    private string?[]? _inboundAliases;
    private int _inboundQos1;

    // Publishes (QoS 0/1) and acknowledgements read from one network read go out as one grain call per shard and one
    // per session: a client that pipelines costs a call per batch, not per packet.
    private const int MaxBatch = 64;
    private readonly List<(MqttMessage Message, ushort PacketId)> _publishBatch = [];
    private readonly List<OutboundAcknowledgement> _ackBatch = [];

    // Set by an MQTT 5 DISCONNECT that carried a Session Expiry Interval.
    private uint? _disconnectSessionExpiry;

    public MqttConnection(ConnectionContext transport, MqttGateway gateway)
    {
        _transport = transport;
        _gateway = gateway;
        _logger = gateway.ConnectionLogger;
        Id = gateway.NextConnectionId();
        _createdAt = _lastActivity = gateway.TimeProvider.GetTimestamp();
    }

    public long Id { get; }

    /// <summary>Completes when the connection is closed and its session was told.</summary>
    public Task Completion => _completion.Task;

    private string Remote => _transport.RemoteEndPoint?.ToString() ?? "?";

    public async Task RunAsync()
    {
        _gateway.Register(this);
        try
        {
            // The read loop: every packet in the order it came.
            var input = _transport.Transport.Input;
            var maxPacketSize = _gateway.Options.MaxPacketSize;
            while (!_closing)
            {
                var result = await input.ReadAsync();
                if (result.IsCanceled)
                {
                    break;
                }

                var buffer = result.Buffer;
                try
                {
                    while (!_closing)
                    {
                        if (_session is null && !buffer.IsEmpty && buffer.FirstSpan[0] != 0x10)
                        {
                            // Known from the first byte: the first packet must be CONNECT [MQTT-3.1.0-1].
                            Reject("protocol_error", 0, "first packet is not CONNECT");
                            return;
                        }

                        var status = MqttFrame.TryRead(buffer, maxPacketSize, out var fixedHeader, out var headerLength, out var totalLength);
                        if (status == FrameStatus.Incomplete)
                        {
                            break;
                        }

                        if (status == FrameStatus.TooLarge)
                        {
                            Reject("packet_too_large", 0x95, $"packet of {totalLength} bytes is over Mqtt:MaxPacketSize {maxPacketSize}");
                            return;
                        }

                        if (status == FrameStatus.Malformed)
                        {
                            Reject("malformed_packet", 0x81, "invalid remaining length");
                            return;
                        }

                        var body = buffer.Slice(headerLength, totalLength - headerLength);
                        _gateway.Metrics.BytesReceived.Add(totalLength);
                        Volatile.Write(ref _lastActivity, _gateway.TimeProvider.GetTimestamp());
                        await HandleFrameAsync(fixedHeader, body, totalLength);
                        buffer = buffer.Slice(totalLength);
                    }
                }
                finally
                {
                    // Everything read so far was accepted: route it even when a later packet closes the connection.
                    await FlushBatchesAsync();
                    input.AdvanceTo(buffer.Start, buffer.End);
                }

                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is ConnectionResetException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The peer went away: an abnormal end of the connection, handled below.
        }
        catch (Exception ex)
        {
            LogConnectionFailed(_logger, ex, _clientId, Remote);
        }
        finally
        {
            _gateway.Unregister(this);
            await _outbox.CompleteAsync().ConfigureAwait(false);
            await EndSessionAsync();
            _completion.TrySetResult();
        }
    }

    /// <summary>Queues a packet pushed by a silo; before CONNACK it waits so CONNACK is always first.</summary>
    public void EnqueueDelivery(Delivery delivery)
    {
        lock (_gate)
        {
            if (!_open)
            {
                (_pendingBeforeConnAck ??= []).Add(delivery);
                return;
            }

            if (delivery.Qos == 0 && Volatile.Read(ref _pendingWrites) >= _gateway.Options.MaxPendingWrites)
            {
                _gateway.Metrics.MessagesDropped.Add(1, new KeyValuePair<string, object?>("reason", "slow_consumer"));
                return;
            }

            Interlocked.Increment(ref _pendingWrites);
            Queue(new Outgoing(null, delivery));
        }
    }

    /// <summary>Closes the connection from the server side; MQTT 5 clients get a DISCONNECT with the reason code first.</summary>
    public void CloseByServer(byte reasonCode, string reason)
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
                _closeAfterConnAck ??= (reasonCode, reason);
                return;
            }

            // Queued before _closing is set: a read loop that sees _closing completes the outbox behind this packet.
            state = _open ? "connected" : "before CONNECT";
            if (_v5 && _open)
            {
                // The reason string says why in words, unless it could take the packet over the client's maximum.
                var disconnect = new MqttDisconnectPacket { ReasonCode = (MqttDisconnectReasonCode)reasonCode };
                if (_clientMaxPacketSize == 0 || reason.Length + 16 <= _clientMaxPacketSize)
                {
                    disconnect.ReasonString = reason;
                }

                WriteOutgoing(new Outgoing(disconnect, null, Terminal: true));
            }
            else
            {
                WriteOutgoing(new Outgoing(null, null, Terminal: true));
            }

            _closing = true;
        }

        _gateway.Metrics.ConnectionsClosed.Add(1, new KeyValuePair<string, object?>("reason", reason));
        LogClosedByServer(_logger, _clientId, Remote, reason, reasonCode, state);
        _transport.Transport.Input.CancelPendingRead();
    }

    public void CheckTimeouts(long now)
    {
        var elapsed = _gateway.TimeProvider.GetElapsedTime(Volatile.Read(ref _lastActivity), now);
        if (!_open)
        {
            if (_gateway.TimeProvider.GetElapsedTime(_createdAt, now) > _gateway.Options.ConnectTimeout && _session is null)
            {
                CloseByServer(0x87, "connect_timeout");
            }

            return;
        }

        // [MQTT-3.1.2-22] (3.1.1: MQTT-3.1.2-24): one and a half times the keep alive without a packet closes the connection.
        if (_keepAliveTicks > 0 && elapsed.Ticks > _keepAliveTicks)
        {
            CloseByServer(0x8D, "keep_alive_timeout");
        }
    }

    private async Task HandleFrameAsync(byte fixedHeader, ReadOnlySequence<byte> body, int totalLength)
    {
        var segment = body.IsSingleSegment && MemoryMarshal.TryGetArray(body.First, out var array) ? array : new ArraySegment<byte>(body.ToArray());
        if (!MqttPacketValidator.Validate(fixedHeader, segment, _session is null ? MqttProtocolVersion.Unknown : _protocolVersion, out var refusal))
        {
            RefuseInvalidPacket(refusal);
            return;
        }

        var received = new ReceivedMqttPacket(fixedHeader, segment, totalLength);
        if (_session is null && !_closing)
        {
            await HandleFirstPacketAsync(received);
            return;
        }

        MqttPacket packet;
        try
        {
            packet = Formatter.Decode(received);
        }
        catch (Exception ex) when (ex is MqttProtocolViolationException or ArgumentException or InvalidOperationException or IndexOutOfRangeException)
        {
            Reject("malformed_packet", 0x81, ex.Message);
            return;
        }

        if (packet is not (MqttPublishPacket { QualityOfServiceLevel: < MqttQualityOfServiceLevel.ExactlyOnce } or MqttPubAckPacket or MqttPubRecPacket or MqttPubCompPacket))
        {
            // Anything else sees the effects of the packets before it.
            await FlushBatchesAsync();
        }

        switch (packet)
        {
            case MqttPublishPacket publish:
                await HandlePublishAsync(publish, segment);
                break;
            case MqttPubAckPacket ack:
                await AddAcknowledgementAsync(ack.PacketIdentifier, OutboundAck.PubAck);
                break;
            case MqttPubRecPacket rec when (int)rec.ReasonCode >= 0x80:
                // A failing PUBREC ends the exchange: no PUBREL, and the message leaves the in-flight window (MQTT 5 section 4.3.3).
                await AddAcknowledgementAsync(rec.PacketIdentifier, OutboundAck.PubComp);
                break;
            case MqttPubRecPacket rec:
                Send(new MqttPubRelPacket { PacketIdentifier = rec.PacketIdentifier });
                await AddAcknowledgementAsync(rec.PacketIdentifier, OutboundAck.PubRec);
                break;
            case MqttPubCompPacket comp:
                await AddAcknowledgementAsync(comp.PacketIdentifier, OutboundAck.PubComp);
                break;
            case MqttPubRelPacket rel:
                _inboundQos2?.Remove(rel.PacketIdentifier);
                await _session!.ReleaseInboundQos2(Id, rel.PacketIdentifier);
                Send(new MqttPubCompPacket { PacketIdentifier = rel.PacketIdentifier });
                break;
            case MqttSubscribePacket subscribe:
                await HandleSubscribeAsync(subscribe);
                break;
            case MqttUnsubscribePacket unsubscribe:
                await HandleUnsubscribeAsync(unsubscribe);
                break;
            case MqttPingReqPacket:
                Send(MqttPingRespPacket.Instance);
                break;
            case MqttDisconnectPacket disconnect:
                HandleDisconnect(disconnect, segment);
                break;
            case MqttConnectPacket:
                Reject("protocol_error", 0x82, "second CONNECT");
                break;
            default:
                // AUTH without an agreed authentication method, or a packet only a server sends.
                Reject("protocol_error", 0x82, $"unexpected {packet.GetType().Name}");
                break;
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
            Reject("protocol_error", 0x82, $"DISCONNECT sets Session Expiry Interval {sessionExpiry} after CONNECT set 0");
            return;
        }

        _disconnectSessionExpiry = sessionExpiry;
        _disconnectKind = _v5 && disconnect.ReasonCode == MqttDisconnectReasonCode.DisconnectWithWillMessage
            ? DisconnectKind.NormalWithWill
            : DisconnectKind.Normal;
        _closing = true;
        Queue(new Outgoing(null, null, Terminal: true));
    }

    private async Task HandleFirstPacketAsync(ReceivedMqttPacket received)
    {
        if (!MqttFrame.TryReadProtocol(received.Body, out var name, out var level))
        {
            Reject("malformed_packet", 0, "CONNECT too short");
            return;
        }

        if (!((name == "MQTT" && level is 4 or 5) || (name == "MQIsdp" && level == 3)))
        {
            // [MQTT-3.1.2-2]: answer an unsupported protocol level with return code 0x01, then close.
            _protocolVersion = MqttProtocolVersion.V311;
            RefuseConnect("unsupported_protocol_version", MqttConnectReturnCode.ConnectionRefusedUnacceptableProtocolVersion, MqttConnectReasonCode.UnsupportedProtocolVersion, $"protocol {name} level {level}");
            return;
        }

        if (level is 3 or 4 && MqttFrame.IsEmptyClientIdWithoutCleanSession(received.Body))
        {
            // MQTT 3.1.1 [MQTT-3.1.3-8]: an empty client id needs clean session: CONNACK 0x02, then close.
            _protocolVersion = MqttProtocolVersion.V311;
            RefuseConnect("client_id_rejected", MqttConnectReturnCode.ConnectionRefusedIdentifierRejected, MqttConnectReasonCode.ClientIdentifierNotValid, "empty client id without clean session");
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
            Reject("malformed_packet", 0x81, ex.Message);
            return;
        }

        await HandleConnectAsync(connect);
    }

    private async Task HandleConnectAsync(MqttConnectPacket connect)
    {
        if (_v5)
        {
            // Known before any CONNACK, refusals included: nothing larger may be sent to this client [MQTT-3.2.2-19].
            _clientMaxPacketSize = connect.MaximumPacketSize;
        }

        if (_gateway.IsStopping)
        {
            RefuseConnect("server_shutting_down", MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.ServerUnavailable, "shutting down");
            return;
        }

        var clientId = connect.ClientId ?? string.Empty;
        string? assigned = null;
        if (clientId.Length == 0)
        {
            if (!_v5 && !connect.CleanSession)
            {
                // MQTT 3.1.1 [MQTT-3.1.3-8]: an empty client id needs clean session.
                RefuseConnect("client_id_rejected", MqttConnectReturnCode.ConnectionRefusedIdentifierRejected, MqttConnectReasonCode.ClientIdentifierNotValid, "empty client id without clean session");
                return;
            }

            clientId = assigned = "auto-" + Guid.NewGuid().ToString("N");
        }

        if (_v5 && !string.IsNullOrEmpty(connect.AuthenticationMethod))
        {
            RefuseConnect("bad_authentication_method", MqttConnectReturnCode.ConnectionRefusedNotAuthorized, MqttConnectReasonCode.BadAuthenticationMethod, $"authentication method '{connect.AuthenticationMethod}' is not supported");
            return;
        }

        switch (_gateway.Authenticate(connect.Username, connect.Password))
        {
            case AuthResult.BadCredentials:
                RefuseConnect("bad_credentials", MqttConnectReturnCode.ConnectionRefusedBadUsernameOrPassword, MqttConnectReasonCode.BadUserNameOrPassword, $"bad user name or password for '{connect.Username}'");
                return;
            case AuthResult.NotAuthorized:
                RefuseConnect("not_authorized", MqttConnectReturnCode.ConnectionRefusedNotAuthorized, MqttConnectReasonCode.NotAuthorized, "anonymous clients are not allowed");
                return;
        }

        MqttMessage? will = null;
        if (connect.WillFlag)
        {
            if (!MqttTopic.IsValidTopicName(connect.WillTopic ?? string.Empty))
            {
                RefuseConnect("invalid_topic", MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.TopicNameInvalid, $"invalid will topic '{connect.WillTopic}'");
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

        if (!_gateway.TryAcquireSessionSlot())
        {
            RefuseConnect("max_connections", MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.QuotaExceeded, $"Mqtt:MaxConnections {_gateway.Options.MaxConnections} reached");
            return;
        }

        _hasSessionSlot = true;
        _clientId = clientId;
        _session = _gateway.Session(clientId);
        var expiry = _v5 ? connect.SessionExpiryInterval : connect.CleanSession ? 0u : uint.MaxValue;
        ConnectResult result;
        try
        {
            result = await _session.Connect(new ConnectRequest(
                new GatewayPresence(_gateway.Reference, _gateway.Id, Id, _gateway.LeaseId),
                connect.CleanSession,
                expiry,
                will,
                (byte)_protocolVersion,
                connect.ReceiveMaximum,
                _v5 ? connect.WillDelayInterval : 0));
        }
        catch (Exception ex)
        {
            LogSessionCallFailed(_logger, ex, clientId);
            _session = null;
            RefuseConnect("session_unavailable", MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.ServerUnavailable, "session not available");
            return;
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

        var connAck = new MqttConnAckPacket
        {
            ReturnCode = MqttConnectReturnCode.ConnectionAccepted,
            ReasonCode = MqttConnectReasonCode.Success,
            IsSessionPresent = result.SessionPresent,
            AssignedClientIdentifier = _v5 ? assigned : null,
            // Maximum QoS 2 and the "available" flags set to true are written as absent, which is what they mean.
            MaximumQoS = MqttQualityOfServiceLevel.ExactlyOnce,
            RetainAvailable = true,
            WildcardSubscriptionAvailable = true,
            SubscriptionIdentifiersAvailable = true,
            SharedSubscriptionAvailable = true,
            MaximumPacketSize = (uint)options.MaxPacketSize,
            ReceiveMaximum = (ushort)options.ReceiveMaximum,
            TopicAliasMaximum = (ushort)options.TopicAliasMaximum,
            ServerKeepAlive = serverKeepAlive,
        };

        (byte ReasonCode, string Reason)? closeNow;
        lock (_gate)
        {
            WriteOutgoing(new Outgoing(connAck, null));
            foreach (var d in result.Resend)
            {
                WriteOutgoing(new Outgoing(null, d));
            }

            if (_pendingBeforeConnAck is { } pending)
            {
                foreach (var d in pending)
                {
                    WriteOutgoing(new Outgoing(null, d));
                }

                _pendingBeforeConnAck = null;
            }

            _open = true;
            closeNow = _closeAfterConnAck;
        }

        _gateway.Metrics.ConnectionsAccepted.Add(1);
        _gateway.Metrics.ConnectionsActive.Add(1);
        LogConnected(_logger, clientId, Remote, _protocolVersion, result.SessionPresent, _v5 && will is not null ? connect.WillDelayInterval : 0);
        if (closeNow is { } close)
        {
            CloseByServer(close.ReasonCode, close.Reason);
        }

        if (result.WillOfReplacedConnection is { } replacedWill)
        {
            await PublishAsync(replacedWill);
        }
    }

    private async Task HandlePublishAsync(MqttPublishPacket publish, ArraySegment<byte> body)
    {
        var qos = (byte)publish.QualityOfServiceLevel;
        if (qos > 2)
        {
            Reject("malformed_packet", 0x81, "QoS 3");
            return;
        }

        var topic = publish.Topic ?? string.Empty;
        if (_v5 && !TryResolveTopicAlias(publish, body, ref topic))
        {
            return;
        }

        if (!MqttTopic.IsValidTopicName(topic))
        {
            Reject("invalid_topic", 0x90, $"invalid topic name '{topic}' in PUBLISH");
            return;
        }

        if (_v5 && publish.TopicAlias != 0 && publish.Topic is { Length: > 0 })
        {
            (_inboundAliases ??= new string?[_gateway.Options.TopicAliasMaximum + 1])[publish.TopicAlias] = topic;
        }

        if (_v5 && qos > 0 && IsOverReceiveMaximum(qos, publish.PacketIdentifier))
        {
            Reject("receive_maximum_exceeded", 0x93, $"more than Mqtt:ReceiveMaximum {_gateway.Options.ReceiveMaximum} QoS 1/2 publishes unacknowledged");
            return;
        }

        var payload = publish.Payload.IsSingleSegment ? publish.Payload.First : publish.Payload.ToArray();
        if (_v5 && publish.PayloadFormatIndicator == MqttPayloadFormatIndicator.CharacterData && !Utf8.IsValid(payload.Span))
        {
            RejectPayloadFormat(qos, publish.PacketIdentifier, topic);
            return;
        }

        _gateway.Metrics.MessagesReceived.Add(1, QosTags[qos]);
        var message = new MqttMessage
        {
            Topic = topic,
            Payload = payload,
            Qos = qos,
            Retain = publish.Retain,
            SenderClientId = _clientId,
            Properties = _v5 ? MessageMapping.Properties(publish) : null,
            ExpiresAtUtc = _v5 && publish.MessageExpiryInterval > 0 ? UtcNow.AddSeconds(publish.MessageExpiryInterval) : null,
        };

        switch (qos)
        {
            case 0:
            case 1:
                if (qos == 1)
                {
                    _inboundQos1++;
                }

                _publishBatch.Add((message, publish.PacketIdentifier));
                if (_publishBatch.Count >= MaxBatch)
                {
                    await FlushPublishesAsync();
                }

                break;
            default:
                // Exactly once: a packet id already received and not yet released is not routed again.
                if (!await _session!.IsInboundQos2Pending(publish.PacketIdentifier))
                {
                    if (await PublishAsync(message) < 0)
                    {
                        if (_v5)
                        {
                            Send(new MqttPubRecPacket { PacketIdentifier = publish.PacketIdentifier, ReasonCode = MqttPubRecReasonCode.UnspecifiedError });
                        }
                        else
                        {
                            CloseByServer(0x80, "publish_failed");
                        }

                        return;
                    }

                    await _session.AddInboundQos2(Id, publish.PacketIdentifier);
                }

                (_inboundQos2 ??= []).Add(publish.PacketIdentifier);
                Send(new MqttPubRecPacket { PacketIdentifier = publish.PacketIdentifier });
                break;
        }
    }

    /// <summary>
    /// Applies an MQTT 5 Topic Alias: an alias with a topic sets the mapping (once the topic is known to be valid), an
    /// alias with an empty topic uses it. Returns false when the connection is closed for a bad alias.
    /// </summary>
    private bool TryResolveTopicAlias(MqttPublishPacket publish, ArraySegment<byte> body, ref string topic)
    {
        var alias = publish.TopicAlias;
        var maximum = _gateway.Options.TopicAliasMaximum;
        if (alias == 0)
        {
            // MQTTnet reads an absent alias and an alias of 0 the same way; only the latter is an error [MQTT-3.3.2-8].
            if (!MqttPropertyScan.Contains(body, MqttPropertyScan.PublishPropertiesOffset(body, (int)publish.QualityOfServiceLevel), MqttPropertyScan.TopicAlias))
            {
                return true;
            }

            Reject("topic_alias_invalid", 0x94, "topic alias 0");
            return false;
        }

        if (alias > maximum)
        {
            // [MQTT-3.3.2-9]
            Reject("topic_alias_invalid", 0x94, $"topic alias {alias} over Mqtt:TopicAliasMaximum {maximum}");
            return false;
        }

        if (topic.Length > 0)
        {
            return true;
        }

        if (_inboundAliases?[alias] is not { } mapped)
        {
            Reject("protocol_error", 0x82, $"topic alias {alias} used before it was set");
            return false;
        }

        topic = mapped;
        return true;
    }

    /// <summary>Whether one more QoS 1/2 publish goes over the Receive Maximum the CONNACK advertised [MQTT-3.3.4-9].</summary>
    private bool IsOverReceiveMaximum(byte qos, ushort packetId)
    {
        // A QoS 2 re-send of a packet id already PUBRECed on this connection is not a new one.
        if (qos == 2 && _inboundQos2 is not null && _inboundQos2.Contains(packetId))
        {
            return false;
        }

        // QoS 1 publishes count until their batch is routed and acknowledged, QoS 2 ones until PUBREL.
        return _inboundQos1 + (_inboundQos2?.Count ?? 0) >= _gateway.Options.ReceiveMaximum;
    }

    /// <summary>Payload Format Indicator 1 with a payload that is not UTF-8: refused with 0x99 and not routed.</summary>
    private void RejectPayloadFormat(byte qos, ushort packetId, string topic)
    {
        const string Reason = "payload_format_invalid";
        switch (qos)
        {
            case 0:
                Reject(Reason, 0x99, $"PUBLISH to '{topic}' says UTF-8 but its payload is not");
                break;
            case 1:
                _gateway.Metrics.PacketsRejected.Add(1, new KeyValuePair<string, object?>("reason", Reason));
                LogRejected(_logger, _clientId, Remote, Reason, $"PUBLISH to '{topic}' says UTF-8 but its payload is not; PUBACK 0x99");
                Send(new MqttPubAckPacket { PacketIdentifier = packetId, ReasonCode = MqttPubAckReasonCode.PayloadFormatInvalid });
                break;
            default:
                _gateway.Metrics.PacketsRejected.Add(1, new KeyValuePair<string, object?>("reason", Reason));
                LogRejected(_logger, _clientId, Remote, Reason, $"PUBLISH to '{topic}' says UTF-8 but its payload is not; PUBREC 0x99");
                Send(new MqttPubRecPacket { PacketIdentifier = packetId, ReasonCode = MqttPubRecReasonCode.PayloadFormatInvalid });
                break;
        }
    }

    private async Task FlushBatchesAsync()
    {
        await FlushPublishesAsync();
        if (_ackBatch.Count > 0 && _session is { } session)
        {
            OutboundAcknowledgement[] acks = [.. _ackBatch];
            _ackBatch.Clear();
            await session.AcknowledgeBatch(Id, acks);
        }
    }

    private async Task AddAcknowledgementAsync(ushort packetId, OutboundAck ack)
    {
        _ackBatch.Add(new OutboundAcknowledgement(packetId, ack));
        if (_ackBatch.Count >= MaxBatch)
        {
            await FlushBatchesAsync();
        }
    }

    /// <summary>
    /// Routes the batched publishes, one call per shard (per-topic order holds: a topic has one shard, and a shard gets
    /// its messages in read order), then acknowledges the QoS 1 ones in the order they arrived.
    /// </summary>
    private async Task FlushPublishesAsync()
    {
        var count = _publishBatch.Count;
        if (count == 0)
        {
            return;
        }

        var routed = new int[count];
        if (count == 1)
        {
            routed[0] = await PublishAsync(_publishBatch[0].Message);
        }
        else
        {
            var byShard = new Dictionary<int, List<int>>();
            for (var i = 0; i < count; i++)
            {
                var shard = MqttTopic.ShardOf(_publishBatch[i].Message.Topic, _gateway.TopicShards);
                if (!byShard.TryGetValue(shard, out var indexes))
                {
                    byShard[shard] = indexes = [];
                }

                indexes.Add(i);
            }

            var calls = new List<Task>(byShard.Count);
            foreach (var (shard, indexes) in byShard)
            {
                calls.Add(PublishToShardAsync(shard, indexes, routed));
            }

            await Task.WhenAll(calls);
        }

        for (var i = 0; i < count; i++)
        {
            var (message, packetId) = _publishBatch[i];
            if (message.Qos != 1)
            {
                continue;
            }

            _inboundQos1--;
            if (routed[i] >= 0)
            {
                Send(new MqttPubAckPacket
                {
                    PacketIdentifier = packetId,
                    ReasonCode = routed[i] == 0 && _v5 ? MqttPubAckReasonCode.NoMatchingSubscribers : MqttPubAckReasonCode.Success,
                });
            }
            else if (_v5)
            {
                Send(new MqttPubAckPacket { PacketIdentifier = packetId, ReasonCode = MqttPubAckReasonCode.UnspecifiedError });
            }
            else
            {
                CloseByServer(0x80, "publish_failed");
            }
        }

        _publishBatch.Clear();
    }

    private async Task PublishToShardAsync(int shard, List<int> indexes, int[] routed)
    {
        var messages = new MqttMessage[indexes.Count];
        for (var i = 0; i < messages.Length; i++)
        {
            messages[i] = _publishBatch[indexes[i]].Message;
        }

        try
        {
            var counts = await _gateway.Shard(shard).PublishBatch(messages);
            for (var i = 0; i < indexes.Count; i++)
            {
                routed[indexes[i]] = counts[i];
            }
        }
        catch (Exception ex)
        {
            _gateway.Metrics.MessagesDropped.Add(messages.Length, new KeyValuePair<string, object?>("reason", "publish_failed"));
            LogPublishFailed(_logger, ex, _clientId, messages[0].Topic);
            foreach (var i in indexes)
            {
                routed[i] = -1;
            }
        }
    }

    /// <summary>Routes a message through its topic shard; returns the number of sessions it reached, or -1 on failure.</summary>
    private async Task<int> PublishAsync(MqttMessage message)
    {
        var shard = _gateway.Shard(MqttTopic.ShardOf(message.Topic, _gateway.TopicShards));
        try
        {
            return await shard.Publish(message);
        }
        catch (Exception ex)
        {
            _gateway.Metrics.MessagesDropped.Add(1, new KeyValuePair<string, object?>("reason", "publish_failed"));
            LogPublishFailed(_logger, ex, _clientId, message.Topic);
            return -1;
        }
    }

    private async Task HandleSubscribeAsync(MqttSubscribePacket subscribe)
    {
        if (subscribe.TopicFilters.Count == 0)
        {
            Reject("protocol_error", 0x82, "SUBSCRIBE without topic filters");
            return;
        }

        var codes = new MqttSubscribeReasonCode[subscribe.TopicFilters.Count];
        var accepted = new List<Subscription>(codes.Length);
        var positions = new List<int>(codes.Length);
        for (var i = 0; i < codes.Length; i++)
        {
            var filter = subscribe.TopicFilters[i];
            var topic = filter.Topic ?? string.Empty;
            var shared = SharedSubscription.IsShared(topic);
            var valid = shared ? SharedSubscription.TryParse(topic, out _, out _) : MqttTopic.IsValidTopicFilter(topic);
            if (!valid || filter.QualityOfServiceLevel > MqttQualityOfServiceLevel.ExactlyOnce)
            {
                codes[i] = _v5 ? MqttSubscribeReasonCode.TopicFilterInvalid : MqttSubscribeReasonCode.UnspecifiedError;
                _gateway.Metrics.PacketsRejected.Add(1, new KeyValuePair<string, object?>("reason", "invalid_filter"));
                LogRejectedFilter(_logger, _clientId, topic);
                continue;
            }

            if (shared && filter.NoLocal)
            {
                // [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error.
                Reject("protocol_error", 0x82, $"No Local set on shared subscription '{topic}'");
                return;
            }

            accepted.Add(new Subscription(topic, (byte)filter.QualityOfServiceLevel, filter.NoLocal, filter.RetainAsPublished, (byte)filter.RetainHandling, subscribe.SubscriptionIdentifier));
            positions.Add(i);
        }

        Delivery[] retained = [];
        if (accepted.Count > 0)
        {
            var result = await _session!.Subscribe(Id, [.. accepted]);
            for (var j = 0; j < positions.Count; j++)
            {
                codes[positions[j]] = (MqttSubscribeReasonCode)result.GrantedQos[j];
            }

            retained = result.Retained;
        }

        Send(new MqttSubAckPacket { PacketIdentifier = subscribe.PacketIdentifier, ReasonCodes = [.. codes] });
        foreach (var d in retained)
        {
            EnqueueDelivery(d);
        }
    }

    private async Task HandleUnsubscribeAsync(MqttUnsubscribePacket unsubscribe)
    {
        var codes = new MqttUnsubscribeReasonCode[unsubscribe.TopicFilters.Count];
        var valid = new List<string>(codes.Length);
        var positions = new List<int>(codes.Length);
        for (var i = 0; i < codes.Length; i++)
        {
            var filter = unsubscribe.TopicFilters[i] ?? string.Empty;
            if (!MqttTopic.IsValidTopicFilter(filter))
            {
                codes[i] = MqttUnsubscribeReasonCode.TopicFilterInvalid;
                continue;
            }

            valid.Add(filter);
            positions.Add(i);
        }

        if (valid.Count > 0)
        {
            var existed = await _session!.Unsubscribe(Id, [.. valid]);
            for (var j = 0; j < positions.Count; j++)
            {
                codes[positions[j]] = existed[j] ? MqttUnsubscribeReasonCode.Success : MqttUnsubscribeReasonCode.NoSubscriptionExisted;
            }
        }

        Send(new MqttUnsubAckPacket { PacketIdentifier = unsubscribe.PacketIdentifier, ReasonCodes = [.. codes] });
    }

    private async Task EndSessionAsync()
    {
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

        var kind = _disconnectKind ?? DisconnectKind.ConnectionLost;
        try
        {
            var will = await _session.Disconnect(Id, kind, _disconnectSessionExpiry);
            if (will is not null)
            {
                await PublishAsync(will);
            }
        }
        catch (Exception ex)
        {
            LogSessionCallFailed(_logger, ex, _clientId ?? "?");
        }

        LogDisconnected(_logger, _clientId, Remote, kind, _disconnectSessionExpiry?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unchanged");
    }

    private void Reject(string reason, byte v5ReasonCode, string detail)
    {
        _gateway.Metrics.PacketsRejected.Add(1, new KeyValuePair<string, object?>("reason", reason));
        LogRejected(_logger, _clientId, Remote, reason, detail);
        CloseByServer(v5ReasonCode, reason);
    }

    private void RefuseConnect(string reason, MqttConnectReturnCode v3Code, MqttConnectReasonCode v5Code, string detail)
    {
        _closing = true;
        _gateway.Metrics.ConnectionsRefused.Add(1, new KeyValuePair<string, object?>("reason", reason));
        LogRefused(_logger, Remote, reason, detail);
        var connAck = new MqttConnAckPacket { ReturnCode = v3Code, ReasonCode = v5Code };

        // The reason string is left out when it could take the CONNACK over the client's Maximum Packet Size
        // [MQTT-3.2.2-19]; 16 bytes cover the fixed header, flags, reason code and property framing.
        if (_v5 && (_clientMaxPacketSize == 0 || System.Text.Encoding.UTF8.GetByteCount(detail) + 16 <= _clientMaxPacketSize))
        {
            connAck.ReasonString = detail;
        }

        lock (_gate)
        {
            Queue(new Outgoing(connAck, null, Terminal: true));
        }
    }

    private void Send(MqttPacket packet, bool terminal = false)
    {
        lock (_gate)
        {
            WriteOutgoing(new Outgoing(packet, null, terminal));
        }
    }

    private void WriteOutgoing(Outgoing item)
    {
        if (item.Delivery is not null)
        {
            Interlocked.Increment(ref _pendingWrites);
        }

        Queue(item);
    }

    /// <summary>Queues a packet or delivery to write, and starts the drain when none runs.</summary>
    private void Queue(Outgoing item)
    {
        if (_outbox.TryWrite(item, out var startDrain) && startDrain)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);
        }
    }

    void IThreadPoolWorkItem.Execute() => _ = DrainAsync();

    /// <summary>Writes what is queued, flushes, and ends when the outbox is empty (the next write starts it again).</summary>
    private async Task DrainAsync()
    {
        var output = _transport.Transport.Output;
        try
        {
            do
            {
                while (_outbox.TryRead(out var item))
                {
                    if (item.Delivery is not null)
                    {
                        Interlocked.Decrement(ref _pendingWrites);
                    }

                    if (item.Packet is { } packet)
                    {
                        Write(output, packet);
                    }
                    else if (item.Delivery is { } delivery)
                    {
                        WriteDelivery(output, delivery);
                    }

                    if (item.Terminal)
                    {
                        await output.FlushAsync();
                        await output.CompleteAsync();
                        _closing = true;
                        _transport.Transport.Input.CancelPendingRead();

                        // Only now: the end of the connection waits for this drain, so the packet is out before the close.
                        _outbox.Stop();
                        return;
                    }
                }

                var flush = await output.FlushAsync();
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    _outbox.Stop();
                    return;
                }
            }
            while (!_outbox.TryEndDrain());
        }
        catch (Exception ex)
        {
            // A connection that is gone is not worth a log line; anything else is. Either way the read loop ends too.
            if (ex is not (IOException or ConnectionResetException or InvalidOperationException or ObjectDisposedException or OperationCanceledException))
            {
                LogConnectionFailed(_logger, ex, _clientId, Remote);
            }

            _outbox.Stop();
            _transport.Transport.Input.CancelPendingRead();
        }
    }

    private MqttPacketFormatterAdapter Formatter => PacketFormatters.For(_protocolVersion);

    private void Write(PipeWriter output, MqttPacket packet)
    {
        var formatter = Formatter;
        var buffer = formatter.Encode(packet);
        try
        {
            Write(output, buffer);
        }
        finally
        {
            formatter.Cleanup();
        }
    }

    private void Write(PipeWriter output, MqttPacketBuffer buffer)
    {
        output.Write(buffer.Packet.AsSpan());
        foreach (var segment in buffer.Payload)
        {
            output.Write(segment.Span);
        }

        _gateway.Metrics.BytesSent.Add(buffer.Length);
    }

    /// <summary>
    /// Writes a packet a silo pushed. A message that expired on its way, or whose PUBLISH is larger than the client's
    /// Maximum Packet Size, is not written [MQTT-3.3.2-5], [MQTT-3.1.2-25]: it is counted and, for QoS 1/2, acknowledged
    /// to the session as if the client had, so it leaves the in-flight window.
    /// </summary>
    private void WriteDelivery(PipeWriter output, Delivery d)
    {
        if (d.Kind == DeliveryKind.PubRel)
        {
            Write(output, new MqttPubRelPacket { PacketIdentifier = d.PacketId });
            return;
        }

        var now = UtcNow;
        if (d.Message.IsExpired(now))
        {
            DropDelivery(d, ExpiredTag);
            return;
        }

        var publish = MessageMapping.ToPublish(d, _v5, now);
        var newAlias = _outboundAliases?.Apply(publish) ?? 0;
        var formatter = Formatter;
        var buffer = formatter.Encode(publish);
        try
        {
            if (_clientMaxPacketSize > 0 && (uint)buffer.Length > _clientMaxPacketSize)
            {
                DropDelivery(d, TooLargeForClientTag);
                return;
            }

            Write(output, buffer);
        }
        finally
        {
            formatter.Cleanup();
        }

        if (newAlias != 0)
        {
            _outboundAliases!.Assign(d.Message.Topic, newAlias);
        }

        _gateway.Metrics.MessagesSent.Add(1, QosTags[d.Qos]);
    }

    private void DropDelivery(Delivery d, KeyValuePair<string, object?> reason)
    {
        _gateway.Metrics.MessagesDropped.Add(1, reason);
        LogDeliveryDropped(_logger, _clientId, d.Message.Topic, d.Qos, (string)reason.Value!);
        if (d.Qos > 0 && _session is { } session)
        {
            // Not awaited: the writer does not wait for grains. A lost acknowledgement only means the session sends
            // the message again on the next connection, where it is dropped again.
            _ = AcknowledgeDroppedAsync(session, d.PacketId, d.Qos == 1 ? OutboundAck.PubAck : OutboundAck.PubComp);
        }
    }

    private async Task AcknowledgeDroppedAsync(IClientSessionGrain session, ushort packetId, OutboundAck ack)
    {
        try
        {
            await session.Acknowledge(Id, packetId, ack);
        }
        catch (Exception ex)
        {
            LogSessionCallFailed(_logger, ex, _clientId ?? "?");
        }
    }

    private DateTime UtcNow => _gateway.TimeProvider.GetUtcNow().UtcDateTime;

    [LoggerMessage(Level = LogLevel.Debug, Message = "Client {ClientId} connected from {Remote} ({Protocol}, session present: {SessionPresent}, will delay interval {WillDelay})")]
    private static partial void LogConnected(ILogger logger, string clientId, string remote, MqttProtocolVersion protocol, bool sessionPresent, uint willDelay);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Client {ClientId} from {Remote} disconnected ({Kind}, session expiry interval {SessionExpiry})")]
    private static partial void LogDisconnected(ILogger logger, string? clientId, string remote, DisconnectKind kind, string sessionExpiry);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection from {Remote} refused ({Reason}): {Detail}")]
    private static partial void LogRefused(ILogger logger, string remote, string reason, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId} from {Remote}: bad input ({Reason}): {Detail}")]
    private static partial void LogRejected(ILogger logger, string? clientId, string remote, string reason, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId}: invalid topic filter '{Filter}' refused")]
    private static partial void LogRejectedFilter(ILogger logger, string? clientId, string filter);

    [LoggerMessage(Level = LogLevel.Information, Message = "Client {ClientId} from {Remote} closed by the server ({Reason}, reason code 0x{Code:X2}, {State})")]
    private static partial void LogClosedByServer(ILogger logger, string? clientId, string remote, string reason, byte code, string state);

    [LoggerMessage(Level = LogLevel.Error, Message = "Connection of client {ClientId} from {Remote} failed")]
    private static partial void LogConnectionFailed(ILogger logger, Exception ex, string? clientId, string remote);

    [LoggerMessage(Level = LogLevel.Error, Message = "Session call for client {ClientId} failed")]
    private static partial void LogSessionCallFailed(ILogger logger, Exception ex, string clientId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Publish of client {ClientId} to {Topic} failed")]
    private static partial void LogPublishFailed(ILogger logger, Exception ex, string? clientId, string topic);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Message to {Topic} (QoS {Qos}) for client {ClientId} not sent: {Reason}")]
    private static partial void LogDeliveryDropped(ILogger logger, string? clientId, string topic, byte qos, string reason);

    private readonly record struct Outgoing(MqttPacket? Packet, Delivery? Delivery, bool Terminal = false);

    /// <summary>
    /// The topic aliases this server sets up for the client (MQTT 5, up to the client's Topic Alias Maximum), used by
    /// the drain only. Every topic gets an alias; when all are taken, the slot assigned longest ago is reused.
    /// </summary>
    private sealed class OutboundTopicAliases(ushort maximum)
    {
        private readonly Dictionary<string, ushort> _aliasByTopic = new(StringComparer.Ordinal);
        private readonly string?[] _topicByAlias = new string?[maximum + 1];
        private ushort _next = 1;

        /// <summary>
        /// Puts the alias on the packet: a topic that has one goes out as an empty topic with its alias; any other goes
        /// out with its topic and the next alias, returned so it is assigned only once the packet is written.
        /// </summary>
        public ushort Apply(MqttPublishPacket packet)
        {
            if (_aliasByTopic.TryGetValue(packet.Topic, out var alias))
            {
                packet.TopicAlias = alias;
                packet.Topic = string.Empty;
                return 0;
            }

            packet.TopicAlias = _next;
            return _next;
        }

        /// <summary>Records the alias the client now knows for <paramref name="topic"/>.</summary>
        public void Assign(string topic, ushort alias)
        {
            if (_topicByAlias[alias] is { } previous)
            {
                _aliasByTopic.Remove(previous);
            }

            _topicByAlias[alias] = topic;
            _aliasByTopic[topic] = alias;
            _next = alias == maximum ? (ushort)1 : (ushort)(alias + 1);
        }
    }
}
