using System.IO.Pipelines;
using System.Net;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Connections;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// MQTT over WebSocket: accepts the handshake with the <c>mqtt</c> subprotocol and runs an <see cref="MqttConnection"/>
/// on the bytes of the binary frames, sending its output as binary frames. A text frame closes the connection with
/// WebSocket close status 1003 before any of its bytes reach MQTT [MQTT-6.0.0-1]; a frame error (an unmasked or
/// oversized control frame, an unknown opcode) ends it. Both are counted in <c>mqtt.connections.closed</c> and
/// logged as one line naming the remote endpoint and the error, at most one line per 10 s for each of the two for the
/// whole gateway (a client controls how often they happen; the count is exact).
/// </summary>
internal sealed partial class MqttWebSocketTransport(MqttGateway gateway, ILogger<MqttWebSocketTransport> logger)
{
    /// <summary>The WebSocket subprotocol MQTT uses [MQTT-6.0.0-3].</summary>
    public const string SubProtocol = "mqtt";

    // Receive buffer per read; a larger frame is read in several.
    private const int ReadSize = 4096;
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);

    private readonly LogLimiter _textFrameLog = new(gateway.TimeProvider, LogLimiter.DefaultInterval);
    private readonly LogLimiter _frameErrorLog = new(gateway.TimeProvider, LogLimiter.DefaultInterval);

    /// <summary>Serves one WebSocket request on the MQTT path until the connection ends.</summary>
    public async Task HandleAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest || !context.WebSockets.WebSocketRequestedProtocols.Contains(SubProtocol, StringComparer.Ordinal))
        {
            // MQTT over WebSocket is only the mqtt subprotocol [MQTT-6.0.0-3], [MQTT-6.0.0-4].
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            await context.Response.WriteAsync("MQTT over WebSocket needs a WebSocket handshake with the subprotocol 'mqtt'.");
            return;
        }

        using var socket = await context.WebSockets.AcceptWebSocketAsync(SubProtocol);
        var remote = context.Connection.RemoteIpAddress is { } address ? new IPEndPoint(address, context.Connection.RemotePort) : null;
        var input = new Pipe();
        var output = new Pipe();
        var transport = new DefaultConnectionContext(context.Connection.Id, new Duplex(input.Reader, output.Writer), new Duplex(output.Reader, input.Writer))
        {
            RemoteEndPoint = remote,
        };

        var ending = new Ending(remote?.ToString() ?? "?");
        using var stopReceiving = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var receiving = ReceiveAsync(socket, input.Writer, ending, stopReceiving.Token);
        var sending = SendAsync(socket, output.Reader, ending);
        var mqtt = new MqttConnection(transport, gateway);
        mqtt.AcceptOn(MqttListener.WebSocket);
        await mqtt.RunAsync();

        // The connection wrote its last packet: send what is left, then the close frame; stop reading if the client has not closed.
        await output.Writer.CompleteAsync();
        await sending;
        await stopReceiving.CancelAsync();
        await receiving;
    }

    // Frames in, bytes to the connection; ends at the client's close, a text frame, a frame error or when stopped.
    private async Task ReceiveAsync(WebSocket socket, PipeWriter writer, Ending ending, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                var memory = writer.GetMemory(ReadSize);
                var result = await socket.ReceiveAsync(memory, cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    break;
                }

                if (result.MessageType == WebSocketMessageType.Text)
                {
                    ending.CloseStatus = WebSocketCloseStatus.InvalidMessageType;
                    Refuse(CloseReason.WebSocketTextFrame, _textFrameLog, ending.Remote, "a text frame; MQTT over WebSocket is binary frames only");
                    break;
                }

                writer.Advance(result.Count);
                var flush = await writer.FlushAsync(cancellationToken);
                if (flush.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (WebSocketException ex) when (ex.WebSocketErrorCode != WebSocketError.ConnectionClosedPrematurely)
        {
            // The client broke the WebSocket protocol; the socket is already closed (1002) and aborted.
            Refuse(CloseReason.WebSocketFrameError, _frameErrorLog, ending.Remote, ex.Message);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or ConnectionResetException or ObjectDisposedException)
        {
            // The client went away, or the connection ended first: nothing to say.
        }
        finally
        {
            await writer.CompleteAsync();
        }
    }

    // Bytes from the connection out as binary frames, then the close frame; ends when the connection completed its output.
    private static async Task SendAsync(WebSocket socket, PipeReader reader, Ending ending)
    {
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync();
                var buffer = result.Buffer;
                var position = buffer.Start;
                while (buffer.TryGet(ref position, out var segment))
                {
                    await socket.SendAsync(segment, WebSocketMessageType.Binary, endOfMessage: position.GetObject() is null, CancellationToken.None);
                }

                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                using var timeout = new CancellationTokenSource(CloseTimeout);
                await socket.CloseOutputAsync(ending.CloseStatus, null, timeout.Token);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or ConnectionResetException or ObjectDisposedException)
        {
            // The client is gone; the connection sees its output completed and stops writing.
        }
        finally
        {
            await reader.CompleteAsync();
        }
    }

    private void Refuse(CloseReason reason, LogLimiter limiter, string remote, string detail)
    {
        gateway.Metrics.ConnectionsClosed.Add(1, reason.MetricTag());
        if (limiter.TryEnter(1, out var suppressed))
        {
            LogWebSocketClosed(logger, remote, reason.Tag(), detail, suppressed);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "WebSocket connection from {Remote} closed ({Reason}): {Detail} ({Suppressed} more such closes since the last line; one line per 10 s)")]
    private static partial void LogWebSocketClosed(ILogger logger, string remote, string reason, string detail, long suppressed);

    // How the connection ends, decided by the receiving side and carried out by the sending side (one sender at a time).
    private sealed class Ending(string remote)
    {
        public string Remote { get; } = remote;

        public WebSocketCloseStatus CloseStatus { get; set; } = WebSocketCloseStatus.NormalClosure;
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
