namespace Orleans.Mqtt.Grains;

/// <summary>
/// A gateway's delivery endpoint. Silos push packets for the gateway's connections through it;
/// a gateway registers one observer for all of its connections.
/// </summary>
public interface IGatewayObserver : IGrainObserver
{
    /// <summary>Writes the packets to their connections, in order. Packets for unknown connections are dropped and counted.</summary>
    [ResponseTimeout("00:00:05")]
    Task Deliver(Delivery[] deliveries);

    /// <summary>Closes a connection because another connection took over its client id, or an administrator disconnected it (MQTT 5: DISCONNECT with the reason code first).</summary>
    [ResponseTimeout("00:00:05")]
    Task Disconnect(long connectionId, byte reasonCode);
}
