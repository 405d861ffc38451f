using System.Diagnostics;

namespace Orleans.Mqtt.Telemetry;

/// <summary>
/// The broker's trace names in one place, beside <see cref="MqttMetrics"/>: the <see cref="ActivitySource"/> every span
/// of the broker starts on, the operation of each span, and the attribute names (OpenTelemetry messaging conventions).
/// A span's name is its operation and the topic's destination template (<see cref="DestinationTemplate"/>), never the
/// raw topic, which is an attribute.
/// </summary>
public static class MqttTracing
{
    /// <summary>The name of the activity source the broker's own spans start on.</summary>
    public const string SourceName = "Orleans.Mqtt";

    /// <summary>
    /// The activity sources of Orleans' grain-call spans, which carry a trace from one process to the next. Orleans
    /// files calls to interfaces in a namespace starting with "Orleans" (this broker's grains among them) under its
    /// runtime source, other grains under its application source.
    /// </summary>
    public static readonly string[] OrleansSourceNames = ["Microsoft.Orleans.Runtime", "Microsoft.Orleans.Application"];

    /// <summary>The source every span of the broker starts on. Starts nothing while no tracer listens.</summary>
    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>The MQTT 5 user property that carries a W3C trace context.</summary>
    public const string TraceParentProperty = "traceparent";

    /// <summary>Span operations (the first word of a span's name).</summary>
    public static class Operations
    {
        /// <summary>CONNECT on the gateway, from the packet to the CONNACK.</summary>
        public const string Connect = "connect";

        /// <summary>The credentials check of a CONNECT.</summary>
        public const string Authenticate = "authenticate";

        /// <summary>The session grain's ownership commit (etcd compare-and-swap).</summary>
        public const string OwnershipCommit = "ownership commit";

        /// <summary>SUBSCRIBE on the gateway, from the packet to the SUBACK.</summary>
        public const string Subscribe = "subscribe";

        /// <summary>The replication of a session's routes to every silo.</summary>
        public const string Replicate = "replicate";

        /// <summary>PUBLISH received on the gateway, from the packet to the PUBACK (or until routed, QoS 0).</summary>
        public const string Publish = "publish";

        /// <summary>The topic shard's routing of a message.</summary>
        public const string Route = "route";

        /// <summary>A subscriber session's storing of a QoS 1/2 copy.</summary>
        public const string Deliver = "deliver";

        /// <summary>A copy written to a subscriber's connection by its gateway.</summary>
        public const string Send = "send";

        /// <summary>The subscriber's acknowledgement (PUBACK, PUBREC) of a copy.</summary>
        public const string Settle = "settle";
    }

    /// <summary>Attribute names.</summary>
    public static class Attributes
    {
        /// <summary><c>messaging.system</c>, always <see cref="SystemName"/>.</summary>
        public const string System = "messaging.system";

        /// <summary>The value of <see cref="System"/>.</summary>
        public const string SystemName = "mqtt";

        /// <summary><c>messaging.operation.type</c>: receive, process, send or settle.</summary>
        public const string OperationType = "messaging.operation.type";

        /// <summary><c>messaging.operation.name</c>: the span's operation.</summary>
        public const string OperationName = "messaging.operation.name";

        /// <summary><c>messaging.client.id</c>: the MQTT client id of the connection or session.</summary>
        public const string ClientId = "messaging.client.id";

        /// <summary><c>messaging.destination.name</c>: the topic.</summary>
        public const string Destination = "messaging.destination.name";

        /// <summary><c>messaging.destination.template</c>: the topic with every level after the first replaced by <c>+</c>.</summary>
        public const string DestinationTemplate = "messaging.destination.template";

        /// <summary><c>messaging.message.body.size</c>: the payload's bytes.</summary>
        public const string BodySize = "messaging.message.body.size";

        /// <summary><c>mqtt.qos</c>: the QoS of the message or copy.</summary>
        public const string Qos = "mqtt.qos";

        /// <summary><c>mqtt.packet_id</c>: the packet identifier of a QoS 1/2 copy.</summary>
        public const string PacketId = "mqtt.packet_id";

        /// <summary><c>mqtt.sessions</c>: how many sessions a routed message reached.</summary>
        public const string Sessions = "mqtt.sessions";

        /// <summary><c>mqtt.filters</c>: the number of topic filters in a SUBSCRIBE.</summary>
        public const string Filters = "mqtt.filters";

        /// <summary><c>mqtt.attempts</c>: the compare-and-swap attempts of an ownership commit.</summary>
        public const string Attempts = "mqtt.attempts";

    }

    /// <summary>Values of <see cref="Attributes.OperationType"/>.</summary>
    public static class OperationTypes
    {
        /// <summary>The broker receives a message from its publisher.</summary>
        public const string Receive = "receive";

        /// <summary>The broker works on a message (routing, storing).</summary>
        public const string Process = "process";

        /// <summary>The broker sends a copy to a subscriber.</summary>
        public const string Send = "send";

        /// <summary>A subscriber acknowledges a copy.</summary>
        public const string Settle = "settle";
    }

    /// <summary>
    /// The low-cardinality name of a topic for span names: its first level, then <c>+</c> for each further level
    /// (<c>sensors/42/temp</c> → <c>sensors/+/+</c>). A topic of one level is its own template.
    /// </summary>
    public static string DestinationTemplate(string topic)
    {
        var first = topic.IndexOf('/', StringComparison.Ordinal);
        if (first < 0)
        {
            return topic;
        }

        var levels = 0;
        foreach (var c in topic.AsSpan(first))
        {
            if (c == '/')
            {
                levels++;
            }
        }

        return string.Create(first + (levels * 2), (topic, first, levels), static (span, state) =>
        {
            state.topic.AsSpan(0, state.first).CopyTo(span);
            for (var i = 0; i < state.levels; i++)
            {
                span[state.first + (i * 2)] = '/';
                span[state.first + (i * 2) + 1] = '+';
            }
        });
    }

    /// <summary>The span name of <paramref name="operation"/> on <paramref name="topic"/>: the operation and the topic's template.</summary>
    public static string SpanName(string operation, string topic) => $"{operation} {DestinationTemplate(topic)}";

    /// <summary>
    /// Starts a span that does not become <see cref="Activity.Current"/> (the caller keeps its own), as a child of
    /// <paramref name="parent"/>, or a root when it is default. Null when nothing records it. Roots are only started
    /// for operations the broker decided to trace (<see cref="TraceSampler"/>), with <see cref="Attributes.System"/>
    /// among <paramref name="tags"/>.
    /// </summary>
    public static Activity? StartDetached(string name, ActivityKind kind, ActivityContext parent, IEnumerable<KeyValuePair<string, object?>> tags)
    {
        var previous = Activity.Current;
        // Without a parent it is a root, whatever the caller's flow has current (a WebSocket's HTTP request, say).
        Activity.Current = null;
        var activity = Source.StartActivity(name, kind, parent, tags);
        Activity.Current = previous;
        return activity;
    }

    /// <summary>
    /// Starts a span of <paramref name="operation"/> as a child of <see cref="Activity.Current"/> (which it becomes):
    /// null when there is no current span, so an operation nobody traces starts none of its own.
    /// </summary>
    public static Activity? StartChild(string operation, string? clientId) =>
        Activity.Current is null
            ? null
            : Source.StartActivity(operation, ActivityKind.Internal, default(ActivityContext),
            [
                new(Attributes.System, Attributes.SystemName),
                new(Attributes.OperationName, operation),
                new(Attributes.ClientId, clientId),
            ]);

    /// <summary>
    /// Starts a child span of the W3C <paramref name="traceParent"/> a message carries, for a hop of a traced message;
    /// null when the message is not traced, its context does not parse, or nothing records the span.
    /// </summary>
    public static Activity? StartHop(string? traceParent, string operation, string operationType, ActivityKind kind, MqttMessageTags message)
    {
        if (traceParent is null || !Source.HasListeners() || !TryParseTraceParent(traceParent, out var parent))
        {
            return null;
        }

        return StartDetached(SpanName(operation, message.Topic), kind, parent, message.Tags(operation, operationType));
    }

    /// <summary>
    /// Parses a W3C <c>traceparent</c> (version 00: <c>00-</c>32 hex trace id<c>-</c>16 hex span id<c>-</c>2 hex flags,
    /// neither id all zeros). False for anything else.
    /// </summary>
    public static bool TryParseTraceParent(string? value, out ActivityContext context)
    {
        context = default;
        if (value is not { Length: 55 } || !value.StartsWith("00-", StringComparison.Ordinal)
            || !ActivityContext.TryParse(value, null, true, out var parsed)
            || IsAllZeros(value.AsSpan(3, 32)) || IsAllZeros(value.AsSpan(36, 16)))
        {
            return false;
        }

        context = parsed;
        return true;
    }

    private static bool IsAllZeros(ReadOnlySpan<char> hex) => !hex.ContainsAnyExcept('0');

    /// <summary>The context of <paramref name="activity"/> as a W3C <c>traceparent</c>.</summary>
    public static string TraceParentOf(Activity activity) => activity.Id!;
}

/// <summary>What a span about a message says of it: topic, QoS, client id and payload size.</summary>
public readonly record struct MqttMessageTags(string Topic, byte Qos, string? ClientId, int BodySize)
{
    /// <summary>The attributes of a span of <paramref name="operation"/> about this message.</summary>
    public KeyValuePair<string, object?>[] Tags(string operation, string operationType) =>
    [
        new(MqttTracing.Attributes.System, MqttTracing.Attributes.SystemName),
        new(MqttTracing.Attributes.OperationType, operationType),
        new(MqttTracing.Attributes.OperationName, operation),
        new(MqttTracing.Attributes.Destination, Topic),
        new(MqttTracing.Attributes.DestinationTemplate, MqttTracing.DestinationTemplate(Topic)),
        new(MqttTracing.Attributes.Qos, (int)Qos),
        new(MqttTracing.Attributes.ClientId, ClientId),
        new(MqttTracing.Attributes.BodySize, BodySize),
    ];
}
