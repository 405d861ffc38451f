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

    /// <summary>
    /// MQTT 5's Quota exceeded: the filter would take the session over <c>Mqtt:Limits:MaxSubscriptionsPerClient</c>.
    /// MQTT 3.1.1 has no such code; the gateway sends <see cref="Failure"/> there.
    /// </summary>
    public const byte QuotaExceeded = 0x97;
}
