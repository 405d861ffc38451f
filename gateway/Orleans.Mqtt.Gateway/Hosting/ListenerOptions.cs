namespace Orleans.Mqtt.Gateway;

/// <summary>A TCP listener.</summary>
public class ListenerOptions
{
    /// <summary>Port; 0 turns the listener off.</summary>
    public int Port { get; set; }
}
