using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace Orleans.Mqtt.Gateway;

/// <summary>Kestrel's entry point for MQTT over TCP and TLS: one <see cref="MqttConnection"/> per connection (WebSocket: <see cref="MqttWebSocketTransport"/>).</summary>
internal sealed class MqttConnectionHandler(MqttGateway gateway) : ConnectionHandler
{
    public override Task OnConnectedAsync(ConnectionContext connection)
    {
        var mqtt = new MqttConnection(connection, gateway);
        mqtt.AcceptOn(connection.Features.Get<ITlsHandshakeFeature>() is not null ? MqttListener.Tls : MqttListener.Tcp);
        return mqtt.RunAsync();
    }
}
