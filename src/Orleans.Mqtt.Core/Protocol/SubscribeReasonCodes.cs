namespace Orleans.Mqtt.Protocol;

/// <summary>
/// SUBACK codes decided outside the gateway, which has MQTTnet's enum; the grains do not reference MQTTnet. A granted
/// subscription's code is its QoS (0, 1 or 2) in both versions.
/// </summary>
public static class SubscribeReasonCodes
{
    /// <summary>
    /// The filter was not subscribed: MQTT 3.1.1's Failure return code and MQTT 5's Unspecified error, the same byte.
    /// </summary>
    public const byte Failure = 0x80;
}
