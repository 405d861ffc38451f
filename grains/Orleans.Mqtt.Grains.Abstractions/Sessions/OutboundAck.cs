namespace Orleans.Mqtt.Grains;

/// <summary>An acknowledgement from the client for an outbound QoS 1/2 message.</summary>
public enum OutboundAck : byte
{
    /// <summary>PUBACK (QoS 1 complete).</summary>
    PubAck = 0,

    /// <summary>PUBREC (QoS 2 first half).</summary>
    PubRec = 1,

    /// <summary>PUBCOMP (QoS 2 complete).</summary>
    PubComp = 2,
}
