using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;
using MQTTnet.Adapter;
using MQTTnet.Exceptions;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Protocol;

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
    private readonly ConnectionWriter _writer;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private readonly long _createdAt;
    // Unknown until CONNECT; the formatter for it is shared (see PacketFormatters).
    private MqttProtocolVersion _protocolVersion;
    private List<Delivery>? _pendingBeforeConnAck;
    // A close asked for while the session grain was still accepting the CONNECT (a takeover racing this connect):
    // done right after CONNACK, so the client learns the reason instead of seeing CONNACK and a bare close.
    private (CloseReason Reason, byte ReasonCode)? _closeAfterConnAck;
    private IClientSessionGrain? _session;
    private string? _clientId;
    private bool _v5;
    private bool _open;
    private bool _hasSessionSlot;
    private long _lastActivity;
    private long _keepAliveTicks;
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

    // Made at the first publish or acknowledgement: an idle connection, or one that only takes QoS 0, never needs one.
    private PublishBatcher? _batcher;

    // Set by an MQTT 5 DISCONNECT that carried a Session Expiry Interval.
    private uint? _disconnectSessionExpiry;

    public MqttConnection(ConnectionContext transport, MqttGateway gateway)
    {
        _transport = transport;
        _gateway = gateway;
        _logger = gateway.ConnectionLogger;
        Id = gateway.NextConnectionId();
        _createdAt = _lastActivity = gateway.TimeProvider.GetTimestamp();
        _writer = new ConnectionWriter(this);
    }

    public long Id { get; }

    /// <summary>The gateway this connection belongs to.</summary>
    public MqttGateway Gateway => _gateway;

    /// <summary>The client's session grain, once CONNECT was accepted.</summary>
    public IClientSessionGrain? Session => _session;

    /// <summary>The transport's output, written by the drain only.</summary>
    public PipeWriter Output => _transport.Transport.Output;

    /// <summary>This thread's formatter for the connection's protocol version (see <see cref="PacketFormatters"/>).</summary>
    public MqttPacketFormatterAdapter Formatter => PacketFormatters.For(_protocolVersion);

    /// <summary>Completes when the connection is closed and its session was told.</summary>
    public Task Completion => _completion.Task;

    private string Remote => _transport.RemoteEndPoint?.ToString() ?? "?";

    private PublishBatcher Batcher => _batcher ??= new PublishBatcher(this);

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
                        if (_session is null && !buffer.IsEmpty && buffer.FirstSpan[0] != MqttFrame.ConnectFixedHeader)
                        {
                            // Known from the first byte: the first packet must be CONNECT [MQTT-3.1.0-1].
                            Reject(CloseReason.ProtocolError, "first packet is not CONNECT");
                            return;
                        }

                        var status = MqttFrame.TryRead(buffer, maxPacketSize, out var fixedHeader, out var headerLength, out var totalLength);
                        if (status == FrameStatus.Incomplete)
                        {
                            break;
                        }

                        if (status == FrameStatus.TooLarge)
                        {
                            Reject(CloseReason.PacketTooLarge, $"packet of {totalLength} bytes is over Mqtt:MaxPacketSize {maxPacketSize}");
                            return;
                        }

                        if (status == FrameStatus.Malformed)
                        {
                            Reject(CloseReason.MalformedPacket, "invalid remaining length");
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
                    TrackPartialPacket(buffer.Length, result.Buffer.Length);
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
            LogFailure(ex);
        }
        finally
        {
            _gateway.Unregister(this);
            _identityExpiry?.Dispose();
            await _writer.CompleteAsync().ConfigureAwait(false);
            await EndSessionAsync();
            _completion.TrySetResult();
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
            Reject(CloseReason.MalformedPacket, ex.Message);
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
                SettleTracedSend(ack.PacketIdentifier);
                await Batcher.AddAcknowledgementAsync(ack.PacketIdentifier, OutboundAck.PubAck);
                break;
            case MqttPubRecPacket rec when CloseReasons.IsFailure((byte)rec.ReasonCode):
                // A failing PUBREC ends the exchange: no PUBREL, and the message leaves the in-flight window (MQTT 5 section 4.3.3).
                SettleTracedSend(rec.PacketIdentifier);
                await Batcher.AddAcknowledgementAsync(rec.PacketIdentifier, OutboundAck.PubComp);
                break;
            case MqttPubRecPacket rec:
                SettleTracedSend(rec.PacketIdentifier);
                Send(ReplyPackets.PubRel(rec.PacketIdentifier));
                await Batcher.AddAcknowledgementAsync(rec.PacketIdentifier, OutboundAck.PubRec);
                break;
            case MqttPubCompPacket comp:
                await Batcher.AddAcknowledgementAsync(comp.PacketIdentifier, OutboundAck.PubComp);
                break;
            case MqttPubRelPacket rel:
                _inboundQos2?.Remove(rel.PacketIdentifier);
                if (!(await CallBoundedAsync(
                    GrainCall.Qos2Release,
                    (_session!, Id, rel.PacketIdentifier),
                    static (s, cancellationToken) => s.Item1.ReleaseInboundQos2(s.Id, s.PacketIdentifier, cancellationToken),
                    retry: true)).Ok)
                {
                    // No PUBCOMP for an id the session may still hold (it would take the next PUBLISH with this id for
                    // a duplicate): the client re-sends PUBREL when it resumes the session.
                    CloseForUnresponsiveSession();
                    break;
                }

                Send(ReplyPackets.PubComp(rel.PacketIdentifier));
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
                Reject(CloseReason.ProtocolError, "second CONNECT");
                break;
            default:
                // AUTH without an agreed authentication method, or a packet only a server sends.
                Reject(CloseReason.ProtocolError, $"unexpected {packet.GetType().Name}");
                break;
        }
    }

    /// <summary>Wakes the read loop after the output ended; with <paramref name="closing"/> it also stops reading.</summary>
    public void StopReading(bool closing)
    {
        if (closing)
        {
            _closing = true;
        }

        _transport.Transport.Input.CancelPendingRead();
    }

    /// <summary>Closes the socket at once when the connection runs on the gateway's own TCP transport; false otherwise.</summary>
    public bool AbortSocket()
    {
        if (_transport is not SocketConnection socket)
        {
            return false;
        }

        socket.Close();
        return true;
    }

    /// <summary>Logs a failure of the connection that is not just the peer going away.</summary>
    public void LogFailure(Exception ex) => LogConnectionFailed(_logger, ex, _clientId, Remote);

    private Task FlushBatchesAsync() => _batcher is { } batcher ? batcher.FlushAsync() : Task.CompletedTask;

    private void Send(MqttPacket packet)
    {
        lock (_gate)
        {
            _writer.Enqueue(new Outgoing(packet, null));
        }
    }

    private DateTime UtcNow => _gateway.TimeProvider.GetUtcNow().UtcDateTime;
}
