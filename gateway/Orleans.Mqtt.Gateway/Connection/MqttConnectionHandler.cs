using Microsoft.AspNetCore.Connections;

namespace Orleans.Mqtt.Gateway;

/// <summary>Kestrel's entry point for MQTT over TCP and TLS: one <see cref="MqttConnection"/> per connection (WebSocket: <see cref="MqttWebSocketTransport"/>).</summary>
internal sealed class MqttConnectionHandler(MqttGateway gateway) : ConnectionHandler
{
    public override Task OnConnectedAsync(ConnectionContext connection) => new MqttConnection(connection, gateway).RunAsync();
}
