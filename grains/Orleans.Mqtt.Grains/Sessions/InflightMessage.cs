namespace Orleans.Mqtt.Grains;

/// <summary>An outbound QoS 1/2 message waiting for its acknowledgement.</summary>
[GenerateSerializer]
public sealed class InflightMessage
{
    /// <summary>The packet id it was sent with.</summary>
    [Id(0)] public ushort PacketId { get; set; }

    /// <summary>The message.</summary>
    [Id(1)] public required SessionDelivery Delivery { get; set; }

    /// <summary>QoS 2: PUBREC arrived, PUBREL sent, waiting for PUBCOMP.</summary>
    [Id(2)] public bool Released { get; set; }
}
