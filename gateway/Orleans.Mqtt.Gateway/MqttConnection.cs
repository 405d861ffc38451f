using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using MQTTnet.Adapter;
using MQTTnet.Exceptions;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// One client connection: the MQTT protocol state machine of the gateway. It decodes packets with MQTTnet's
/// formatter, hands every PUBLISH to its topic shard and every session change to the client's session grain, and
/// writes what silos push to it. It holds only connection state: the session lives in the grain.
/// </summary>
internal sealed partial class MqttConnection
{
    private static readonly KeyValuePair<string, object?>[] QosTags =
    [
        new("qos", 0),
        new("qos", 1),
        new("qos", 2),
    ];

    private readonly ConnectionContext _transport;
    private readonly MqttGateway _gateway;
    private readonly ILogger _logger;
    private readonly Channel<Outgoing> _outbox = Channel.CreateUnbounded<Outgoing>(new UnboundedChannelOptions { SingleReader = true });
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private readonly long _createdAt;
    private MqttPacketFormatterAdapter _formatter = new(new MqttBufferWriter(4096, 65536));
    private List<Delivery>? _pendingBeforeConnAck;
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

    public MqttConnection(ConnectionContext transport, MqttGateway gateway)
    {
        _transport = transport;
        _gateway = gateway;
        _logger = gateway.LoggerFactory.CreateLogger<MqttConnection>();
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
        var writer = Task.Run(WriteLoopAsync);
        try
        {
            await ReadLoopAsync();
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
            _outbox.Writer.TryComplete();
            await writer.ConfigureAwait(false);
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
            _outbox.Writer.TryWrite(new Outgoing(null, delivery));
        }
    }

    /// <summary>Closes the connection from the server side; MQTT 5 clients get a DISCONNECT with the reason code first.</summary>
    public void CloseByServer(byte reasonCode, string reason)
    {
        if (_closing)
        {
            return;
        }

        _closing = true;
        _gateway.Metrics.ConnectionsClosed.Add(1, new KeyValuePair<string, object?>("reason", reason));
        LogClosedByServer(_logger, _clientId, Remote, reason, reasonCode);
        if (_v5 && _open)
        {
            Send(new MqttDisconnectPacket { ReasonCode = (MqttDisconnectReasonCode)reasonCode }, terminal: true);
        }
        else
        {
            _outbox.Writer.TryWrite(new Outgoing(null, null, Terminal: true));
        }

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

        // [MQTT-3.1.2-24]: one and a half times the keep alive without a packet closes the connection.
        if (_keepAliveTicks > 0 && elapsed.Ticks > _keepAliveTicks)
        {
            CloseByServer(0x8D, "keep_alive_timeout");
        }
    }

    private async Task ReadLoopAsync()
    {
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
                input.AdvanceTo(buffer.Start, buffer.End);
            }

            if (result.IsCompleted)
            {
                break;
            }
        }
    }

    private async Task HandleFrameAsync(byte fixedHeader, ReadOnlySequence<byte> body, int totalLength)
    {
        var segment = body.IsSingleSegment && MemoryMarshal.TryGetArray(body.First, out var array) ? array : new ArraySegment<byte>(body.ToArray());
        var received = new ReceivedMqttPacket(fixedHeader, segment, totalLength);
        if (_session is null && !_closing)
        {
            await HandleFirstPacketAsync(received);
            return;
        }

        MqttPacket packet;
        try
        {
            packet = _formatter.Decode(received);
        }
        catch (Exception ex) when (ex is MqttProtocolViolationException or ArgumentException or InvalidOperationException or IndexOutOfRangeException)
        {
            Reject("malformed_packet", 0x81, ex.Message);
            return;
        }

        switch (packet)
        {
            case MqttPublishPacket publish:
                await HandlePublishAsync(publish);
                break;
            case MqttPubAckPacket ack:
                await _session!.Acknowledge(Id, ack.PacketIdentifier, OutboundAck.PubAck);
                break;
            case MqttPubRecPacket rec:
                Send(new MqttPubRelPacket { PacketIdentifier = rec.PacketIdentifier });
                await _session!.Acknowledge(Id, rec.PacketIdentifier, OutboundAck.PubRec);
                break;
            case MqttPubCompPacket comp:
                await _session!.Acknowledge(Id, comp.PacketIdentifier, OutboundAck.PubComp);
                break;
            case MqttPubRelPacket rel:
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
                _disconnectKind = _v5 && disconnect.ReasonCode == MqttDisconnectReasonCode.DisconnectWithWillMessage
                    ? DisconnectKind.NormalWithWill
                    : DisconnectKind.Normal;
                _closing = true;
                _outbox.Writer.TryWrite(new Outgoing(null, null, Terminal: true));
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
            _formatter = new MqttPacketFormatterAdapter(MqttProtocolVersion.V311, new MqttBufferWriter(256, 256));
            RefuseConnect("unsupported_protocol_version", MqttConnectReturnCode.ConnectionRefusedUnacceptableProtocolVersion, MqttConnectReasonCode.UnsupportedProtocolVersion, $"protocol {name} level {level}");
            return;
        }

        if (level is 3 or 4 && MqttFrame.IsEmptyClientIdWithoutCleanSession(received.Body))
        {
            // [MQTT-3.1.3-8]: an empty client id needs clean session in 3.1.1: CONNACK 0x02, then close.
            _formatter = new MqttPacketFormatterAdapter(MqttProtocolVersion.V311, new MqttBufferWriter(256, 256));
            RefuseConnect("client_id_rejected", MqttConnectReturnCode.ConnectionRefusedIdentifierRejected, MqttConnectReasonCode.ClientIdentifierNotValid, "empty client id without clean session");
            return;
        }

        MqttConnectPacket connect;
        try
        {
            _formatter.DetectProtocolVersion(received);
            _v5 = _formatter.ProtocolVersion == MqttProtocolVersion.V500;
            connect = (MqttConnectPacket)_formatter.Decode(received);
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
                // [MQTT-3.1.3-8]: an empty client id needs clean session in 3.1.1.
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
        _session = _gateway.GrainFactory.GetGrain<IClientSessionGrain>(clientId);
        var expiry = _v5 ? connect.SessionExpiryInterval : connect.CleanSession ? 0u : uint.MaxValue;
        ConnectResult result;
        try
        {
            result = await _session.Connect(new ConnectRequest(
                new GatewayPresence(_gateway.Reference, _gateway.Id, Id),
                connect.CleanSession,
                expiry,
                will,
                (byte)_formatter.ProtocolVersion,
                connect.ReceiveMaximum));
        }
        catch (Exception ex)
        {
            LogSessionCallFailed(_logger, ex, clientId);
            _session = null;
            RefuseConnect("session_unavailable", MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.ServerUnavailable, "session not available");
            return;
        }

        _keepAliveTicks = connect.KeepAlivePeriod == 0 ? 0 : TimeSpan.FromSeconds(connect.KeepAlivePeriod * 1.5).Ticks;
        var connAck = new MqttConnAckPacket
        {
            ReturnCode = MqttConnectReturnCode.ConnectionAccepted,
            ReasonCode = MqttConnectReasonCode.Success,
            IsSessionPresent = result.SessionPresent,
            AssignedClientIdentifier = _v5 ? assigned : null,
            MaximumQoS = MqttQualityOfServiceLevel.ExactlyOnce,
            RetainAvailable = true,
            WildcardSubscriptionAvailable = true,
            SubscriptionIdentifiersAvailable = true,
            SharedSubscriptionAvailable = true,
            MaximumPacketSize = (uint)_gateway.Options.MaxPacketSize,
        };

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
        }

        _gateway.Metrics.ConnectionsAccepted.Add(1);
        _gateway.Metrics.ConnectionsActive.Add(1);
        LogConnected(_logger, clientId, Remote, _formatter.ProtocolVersion, result.SessionPresent);
        if (result.WillOfReplacedConnection is { } replacedWill)
        {
            await PublishAsync(replacedWill);
        }
    }

    private async Task HandlePublishAsync(MqttPublishPacket publish)
    {
        if (_v5 && publish.TopicAlias != 0)
        {
            // We advertise Topic Alias Maximum 0: any alias is beyond it.
            Reject("topic_alias_invalid", 0x94, $"topic alias {publish.TopicAlias} used, maximum is 0");
            return;
        }

        if (!MqttTopic.IsValidTopicName(publish.Topic ?? string.Empty))
        {
            Reject("invalid_topic", 0x90, $"invalid topic name '{publish.Topic}' in PUBLISH");
            return;
        }

        var qos = (byte)publish.QualityOfServiceLevel;
        if (qos > 2)
        {
            Reject("malformed_packet", 0x81, "QoS 3");
            return;
        }

        _gateway.Metrics.MessagesReceived.Add(1, QosTags[qos]);
        var message = new MqttMessage
        {
            Topic = publish.Topic!,
            Payload = publish.Payload.IsSingleSegment ? publish.Payload.First : publish.Payload.ToArray(),
            Qos = qos,
            Retain = publish.Retain,
            SenderClientId = _clientId,
            Properties = _v5 ? MessageMapping.Properties(publish) : null,
            ExpiresAtUtc = _v5 && publish.MessageExpiryInterval > 0 ? DateTime.UtcNow.AddSeconds(publish.MessageExpiryInterval) : null,
        };

        switch (qos)
        {
            case 0:
                await PublishAsync(message);
                break;
            case 1:
                var routed = await PublishAsync(message);
                if (routed >= 0)
                {
                    Send(new MqttPubAckPacket
                    {
                        PacketIdentifier = publish.PacketIdentifier,
                        ReasonCode = routed == 0 && _v5 ? MqttPubAckReasonCode.NoMatchingSubscribers : MqttPubAckReasonCode.Success,
                    });
                }
                else if (_v5)
                {
                    Send(new MqttPubAckPacket { PacketIdentifier = publish.PacketIdentifier, ReasonCode = MqttPubAckReasonCode.UnspecifiedError });
                }
                else
                {
                    CloseByServer(0x80, "publish_failed");
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

                Send(new MqttPubRecPacket { PacketIdentifier = publish.PacketIdentifier });
                break;
        }
    }

    /// <summary>Routes a message through its topic shard; returns the number of sessions it reached, or -1 on failure.</summary>
    private async Task<int> PublishAsync(MqttMessage message)
    {
        var shard = _gateway.GrainFactory.GetGrain<ITopicShardGrain>(MqttTopic.ShardOf(message.Topic, _gateway.TopicShards));
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
            var will = await _session.Disconnect(Id, kind);
            if (will is not null)
            {
                await PublishAsync(will);
            }
        }
        catch (Exception ex)
        {
            LogSessionCallFailed(_logger, ex, _clientId ?? "?");
        }

        LogDisconnected(_logger, _clientId, Remote, kind);
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
        if (_v5)
        {
            connAck.ReasonString = detail;
        }

        lock (_gate)
        {
            _outbox.Writer.TryWrite(new Outgoing(connAck, null, Terminal: true));
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

        _outbox.Writer.TryWrite(item);
    }

    private async Task WriteLoopAsync()
    {
        var output = _transport.Transport.Output;
        var reader = _outbox.Reader;
        try
        {
            while (await reader.WaitToReadAsync())
            {
                while (reader.TryRead(out var item))
                {
                    if (item.Delivery is not null)
                    {
                        Interlocked.Decrement(ref _pendingWrites);
                    }

                    var packet = item.Packet ?? (item.Delivery is { } d ? ToPacket(d) : null);
                    if (packet is not null)
                    {
                        Write(output, packet);
                    }

                    if (item.Terminal)
                    {
                        await output.FlushAsync();
                        await output.CompleteAsync();
                        _closing = true;
                        _transport.Transport.Input.CancelPendingRead();
                        return;
                    }
                }

                var flush = await output.FlushAsync();
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or InvalidOperationException or ObjectDisposedException or OperationCanceledException)
        {
            // The connection is gone; the read loop ends too.
            _transport.Transport.Input.CancelPendingRead();
        }
    }

    private void Write(PipeWriter output, MqttPacket packet)
    {
        var buffer = _formatter.Encode(packet);
        try
        {
            output.Write(buffer.Packet.AsSpan());
            foreach (var segment in buffer.Payload)
            {
                output.Write(segment.Span);
            }

            _gateway.Metrics.BytesSent.Add(buffer.Length);
        }
        finally
        {
            _formatter.Cleanup();
        }
    }

    private MqttPacket ToPacket(Delivery d)
    {
        if (d.Kind == DeliveryKind.PubRel)
        {
            return new MqttPubRelPacket { PacketIdentifier = d.PacketId };
        }

        _gateway.Metrics.MessagesSent.Add(1, QosTags[d.Qos]);
        return MessageMapping.ToPublish(d, _v5);
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Client {ClientId} connected from {Remote} ({Protocol}, session present: {SessionPresent})")]
    private static partial void LogConnected(ILogger logger, string clientId, string remote, MqttProtocolVersion protocol, bool sessionPresent);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Client {ClientId} from {Remote} disconnected ({Kind})")]
    private static partial void LogDisconnected(ILogger logger, string? clientId, string remote, DisconnectKind kind);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection from {Remote} refused ({Reason}): {Detail}")]
    private static partial void LogRefused(ILogger logger, string remote, string reason, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId} from {Remote}: bad input ({Reason}): {Detail}")]
    private static partial void LogRejected(ILogger logger, string? clientId, string remote, string reason, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId}: invalid topic filter '{Filter}' refused")]
    private static partial void LogRejectedFilter(ILogger logger, string? clientId, string filter);

    [LoggerMessage(Level = LogLevel.Information, Message = "Client {ClientId} from {Remote} closed by the server ({Reason}, reason code 0x{Code:X2})")]
    private static partial void LogClosedByServer(ILogger logger, string? clientId, string remote, string reason, byte code);

    [LoggerMessage(Level = LogLevel.Error, Message = "Connection of client {ClientId} from {Remote} failed")]
    private static partial void LogConnectionFailed(ILogger logger, Exception ex, string? clientId, string remote);

    [LoggerMessage(Level = LogLevel.Error, Message = "Session call for client {ClientId} failed")]
    private static partial void LogSessionCallFailed(ILogger logger, Exception ex, string clientId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Publish of client {ClientId} to {Topic} failed")]
    private static partial void LogPublishFailed(ILogger logger, Exception ex, string? clientId, string topic);

    private readonly record struct Outgoing(MqttPacket? Packet, Delivery? Delivery, bool Terminal = false);
}
