namespace Orleans.Mqtt.Gateway;

/// <summary>What becomes of an inbound PUBLISH that is valid, under the overload state and its client's rates.</summary>
internal enum PublishVerdict
{
    /// <summary>Routed.</summary>
    Route,

    /// <summary>QoS 0 while the gateway is overloaded: dropped first, counted.</summary>
    DropOverloaded,

    /// <summary>QoS 0 over the client's rate: dropped, counted.</summary>
    DropRateLimited,

    /// <summary>MQTT 5 QoS 1/2 over the client's rate: PUBACK/PUBREC 0x97 Quota exceeded.</summary>
    RefuseQuotaExceeded,

    /// <summary>MQTT 3.1.1 QoS 1/2 over the client's rate: the read loop waits until the rate allows it, then routes it.</summary>
    Pace,
}

/// <summary>The rule of <c>Mqtt:Limits</c> rates and <c>Mqtt:Overload</c> for one PUBLISH, apart from the connection that applies it.</summary>
internal static class PublishAdmission
{
    /// <summary>
    /// Decides for a PUBLISH of <paramref name="qos"/> and <paramref name="payloadBytes"/>; takes from
    /// <paramref name="rate"/> (null: no rate set) when it passes. <paramref name="resend"/> is a QoS 2 packet id the
    /// connection already accepted, which is not a new message and is never limited.
    /// </summary>
    public static PublishVerdict Decide(byte qos, bool v5, bool overloaded, bool resend, PublishRateLimit? rate, long now, int payloadBytes)
    {
        if (qos == 0 && overloaded)
        {
            return PublishVerdict.DropOverloaded;
        }

        if (rate is null || resend || rate.TryAcquire(now, payloadBytes))
        {
            return PublishVerdict.Route;
        }

        return qos == 0 ? PublishVerdict.DropRateLimited
            : v5 ? PublishVerdict.RefuseQuotaExceeded
            : PublishVerdict.Pace;
    }
}
