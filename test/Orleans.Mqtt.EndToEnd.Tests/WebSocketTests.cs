using System.Diagnostics;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>MQTT over WebSocket is the <c>mqtt</c> subprotocol only, and a silent socket is not held longer than on the MQTT port.</summary>
[Collection(SharedBrokerCollection.Name)]
public sealed class WebSocketTests(SharedBroker shared)
{
    private readonly BrokerProcess _broker = shared.Broker;

    private Uri Endpoint => new($"ws://127.0.0.1:{_broker.WebSocketPort}/mqtt");

    [Fact]
    public async Task The_mqtt_subprotocol_is_accepted_and_carries_a_connect()
    {
        using var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("mqtt");
        await socket.ConnectAsync(Endpoint, CancellationToken.None);
        Assert.Equal("mqtt", socket.SubProtocol);

        await socket.SendAsync(RawMqttClient.Connect(4, "ws-" + Guid.NewGuid().ToString("N")[..8]), WebSocketMessageType.Binary, true, CancellationToken.None);
        var buffer = new byte[16];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var received = await socket.ReceiveAsync(buffer, timeout.Token);
        Assert.Equal(WebSocketMessageType.Binary, received.MessageType);
        Assert.Equal([0x20, 0x02, 0x00, 0x00], buffer[..received.Count]);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("chat")]
    [InlineData("mqttv3.1")]
    public async Task A_handshake_without_the_mqtt_subprotocol_is_refused(string? subProtocol)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        if (subProtocol is not null)
        {
            socket.Options.AddSubProtocol(subProtocol);
        }

        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(Endpoint, CancellationToken.None));
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, socket.HttpStatusCode);
    }

    [Fact]
    public async Task A_text_frame_closes_the_connection_with_status_1003_before_its_bytes_reach_mqtt()
    {
        var before = await _broker.GetCounterAsync("mqtt_connections_closed_total", "reason=\"websocket_text_frame\"");
        using var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("mqtt");
        await socket.ConnectAsync(Endpoint, CancellationToken.None);

        // A valid CONNECT, in a text frame: the answer is the close, not a CONNACK [MQTT-6.0.0-1].
        await socket.SendAsync(RawMqttClient.Connect(4, "ws-" + Guid.NewGuid().ToString("N")[..8]), WebSocketMessageType.Text, true, CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var received = await socket.ReceiveAsync(new byte[16], timeout.Token);
        Assert.Equal(WebSocketMessageType.Close, received.MessageType);
        Assert.Equal(WebSocketCloseStatus.InvalidMessageType, socket.CloseStatus);
        Assert.Equal(before + 1, await _broker.GetCounterAsync("mqtt_connections_closed_total", "reason=\"websocket_text_frame\""));
    }

    [Fact]
    public async Task A_frame_error_is_logged_in_one_line_naming_the_remote_endpoint_without_a_stack_trace()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _broker.WebSocketPort);
        var stream = tcp.GetStream();
        var key = Convert.ToBase64String(Guid.NewGuid().ToByteArray());
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n" +
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"));
        var response = new StringBuilder();
        var buffer = new byte[1024];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!response.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer, timeout.Token);
            Assert.True(read > 0, "the handshake got no answer");
            response.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        Assert.StartsWith("HTTP/1.1 101", response.ToString(), StringComparison.Ordinal);

        // A binary frame without the client's mask (RFC 6455 section 5.1 says the server must close); at least as long as
        // a masked frame's header, which the server reads whole before it looks at the mask bit.
        await stream.WriteAsync(new byte[] { 0x82, 0x08, 0xC0, 0x00, 0xC0, 0x00, 0xC0, 0x00, 0xC0, 0x00 }, timeout.Token);
        var remote = $"127.0.0.1:{((System.Net.IPEndPoint)tcp.Client.LocalEndPoint!).Port}";
        var line = await _broker.WaitForOutputAsync(l => l.Contains($"WebSocket connection from {remote} closed (websocket_frame_error)", StringComparison.Ordinal));
        Assert.Contains("unmasked", line, StringComparison.Ordinal);
        Assert.DoesNotContain(" at System.", line, StringComparison.Ordinal);
        Assert.DoesNotContain(_broker.Output, l => l.Contains("WebSocketException", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_silent_tcp_connection_on_the_websocket_port_is_closed_like_one_on_the_mqtt_port()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _broker.WebSocketPort);
        var watch = Stopwatch.StartNew();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var read = await tcp.GetStream().ReadAsync(new byte[1], timeout.Token);
        Assert.Equal(0, read);

        // Mqtt:ConnectTimeout is 10 s; Kestrel checks its timeouts once a second.
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(15));
    }
}
