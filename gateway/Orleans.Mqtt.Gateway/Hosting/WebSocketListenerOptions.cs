namespace Orleans.Mqtt.Gateway;

/// <summary>The WebSocket listener.</summary>
public sealed class WebSocketListenerOptions : ListenerOptions
{
    /// <summary>Request path MQTT clients connect to.</summary>
    public string Path { get; set; } = "/mqtt";
}
