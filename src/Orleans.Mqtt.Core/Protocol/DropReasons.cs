using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Protocol;

/// <summary>The metric tag of each <see cref="DropReason"/>, and the one way drops are counted.</summary>
public static class DropReasons
{
    // Indexed by DropReason: tag values are what dashboards and tests read, so they never change with the enum names.
    private static readonly KeyValuePair<string, object?>[] Tags =
    [
        new(CloseReasons.TagName, "slow_consumer"),
        new(CloseReasons.TagName, "connection_gone"),
        new(CloseReasons.TagName, "publish_failed"),
        new(CloseReasons.TagName, "expired"),
        new(CloseReasons.TagName, "packet_too_large_for_client"),
        new(CloseReasons.TagName, "gateway_dead"),
        new(CloseReasons.TagName, "gateway_backlog"),
        new(CloseReasons.TagName, "gateway_unreachable"),
        new(CloseReasons.TagName, "no_session"),
        new(CloseReasons.TagName, "queue_full"),
        new(CloseReasons.TagName, "offline_qos0"),
        new(CloseReasons.TagName, "no_share_member"),
        new(CloseReasons.TagName, "rate_limited"),
        new(CloseReasons.TagName, "overloaded"),
        new(CloseReasons.TagName, "not_authorized"),
        new(CloseReasons.TagName, "silo_stopping"),
    ];

    /// <summary>The metric tag value (<c>reason="..."</c>) of <paramref name="reason"/>.</summary>
    public static string Tag(this DropReason reason) => (string)Tags[(int)reason].Value!;

    /// <summary>The metric tag of <paramref name="reason"/>, made once (no allocation per count).</summary>
    public static KeyValuePair<string, object?> MetricTag(this DropReason reason) => Tags[(int)reason];

    /// <summary>Counts <paramref name="count"/> messages dropped for <paramref name="reason"/>.</summary>
    public static void CountDrop(this MqttMetrics metrics, DropReason reason, long count = 1) =>
        metrics.MessagesDropped.Add(count, Tags[(int)reason]);
}
