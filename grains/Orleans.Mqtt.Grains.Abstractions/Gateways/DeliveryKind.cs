namespace Orleans.Mqtt.Grains;

/// <summary>What kind of packet a delivery puts on the wire.</summary>
public enum DeliveryKind : byte
{
    /// <summary>A PUBLISH packet.</summary>
    Publish = 0,

    /// <summary>A PUBREL packet re-sent for an outbound QoS 2 message whose PUBREC already arrived.</summary>
    PubRel = 1,
}
