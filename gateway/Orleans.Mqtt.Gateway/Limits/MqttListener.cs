namespace Orleans.Mqtt.Gateway;

/// <summary>The listener a connection came in on; each has its own connection rate limit.</summary>
internal enum MqttListener
{
    /// <summary>MQTT over TCP (<c>Mqtt:Tcp:Port</c>).</summary>
    Tcp,

    /// <summary>MQTT over TLS (<c>Mqtt:Tls:Port</c>).</summary>
    Tls,

    /// <summary>MQTT over WebSocket (<c>Mqtt:WebSocket:Port</c>).</summary>
    WebSocket,
}
