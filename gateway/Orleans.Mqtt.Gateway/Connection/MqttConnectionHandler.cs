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

        var mqtt = new MqttConnection(connection, gateway);
        mqtt.AcceptOn(ListenerOf(connection));
        return mqtt.RunAsync();
    }

    /// <summary>
    /// The listener <paramref name="connection"/> came in on: WebSocket connections come through the HTTP pipeline
    /// (they carry a transfer format), TLS ones through Kestrel's TLS middleware.
    /// </summary>
    private static MqttListener ListenerOf(ConnectionContext connection) =>
        connection.Features.Get<ITransferFormatFeature>() is not null ? MqttListener.WebSocket
        : connection.Features.Get<ITlsHandshakeFeature>() is not null ? MqttListener.Tls
        : MqttListener.Tcp;
}
