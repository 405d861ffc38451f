namespace Orleans.Mqtt.Grains;

/// <summary>
/// What a gateway counted since its process started (or, added up, what several gateways counted): PUBLISH packets
/// accepted from clients and written to them, messages not delivered, and the bytes of MQTT packets read and written.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TrafficCounters(
    [property: Id(0)] long MessagesReceived,
    [property: Id(1)] long MessagesSent,
    [property: Id(2)] long MessagesDropped,
    [property: Id(3)] long BytesReceived,
    [property: Id(4)] long BytesSent)
{
    /// <summary>Nothing counted.</summary>
    public static TrafficCounters Zero { get; } = new(0, 0, 0, 0, 0);

    /// <summary>The counters of both, added.</summary>
    public static TrafficCounters operator +(TrafficCounters left, TrafficCounters right) => new(
        left.MessagesReceived + right.MessagesReceived,
        left.MessagesSent + right.MessagesSent,
        left.MessagesDropped + right.MessagesDropped,
        left.BytesReceived + right.BytesReceived,
        left.BytesSent + right.BytesSent);

    /// <summary>What <paramref name="left"/> counted beyond <paramref name="right"/>.</summary>
    public static TrafficCounters operator -(TrafficCounters left, TrafficCounters right) => new(
        left.MessagesReceived - right.MessagesReceived,
        left.MessagesSent - right.MessagesSent,
        left.MessagesDropped - right.MessagesDropped,
        left.BytesReceived - right.BytesReceived,
        left.BytesSent - right.BytesSent);
}
