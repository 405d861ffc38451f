using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace Orleans.Mqtt.Gateway;

/// <summary>Kestrel's entry point for MQTT over TCP, TLS and WebSocket: one <see cref="MqttConnection"/> per connection.</summary>
internal sealed class MqttConnectionHandler(MqttGateway gateway) : ConnectionHandler
{
    public override Task OnConnectedAsync(ConnectionContext connection)
    {
        // WebSocket connections carry binary MQTT frames.
        if (connection.Features.Get<ITransferFormatFeature>() is { } format)
        {
            format.ActiveFormat = TransferFormat.Binary;
        }

        return new MqttConnection(connection, gateway).RunAsync();
    }
}
