namespace Orleans.Mqtt.Grains;

/// <summary>How a connection ended, as the session grain needs to know it.</summary>
public enum DisconnectKind : byte
{
    /// <summary>DISCONNECT with reason 0x00: the will is discarded.</summary>
    Normal = 0,

    /// <summary>MQTT 5 DISCONNECT with reason 0x04: publish the will.</summary>
    NormalWithWill = 1,

    /// <summary>The network connection ended without DISCONNECT (or the server closed it for a protocol error / keep alive).</summary>
    ConnectionLost = 2,
}
