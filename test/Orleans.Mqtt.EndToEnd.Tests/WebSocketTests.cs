using System.Diagnostics;
using System.Net.Sockets;
using System.Net.WebSockets;
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
