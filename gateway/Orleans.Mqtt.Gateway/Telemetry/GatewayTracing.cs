using System.Diagnostics;
using MQTTnet.Packets;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The gateway's spans: CONNECT, SUBSCRIBE, a received PUBLISH (continuing its <c>traceparent</c> user property), a
/// copy written to a subscriber and the subscriber's acknowledgement. One per gateway, and only when
/// <c>Tracing:Enabled</c>: the connection's hot path checks for null and nothing else while tracing is off.
/// </summary>
internal sealed partial class GatewayTracing(TracingOptions options, MqttMetrics metrics, ILogger logger)
{
    private readonly TraceSampler _sampler = new(options);
    private int _invalidLogged;

    /// <summary>What the <c>traceparent</c> user property does (<c>Tracing:Propagation</c>).</summary>
    public TracePropagation Propagation { get; } = options.Propagation;

    /// <summary>The gateway's tracing, or null when <c>Tracing:Enabled</c> is false.</summary>
    public static GatewayTracing? Create(TracingOptions options, MqttMetrics metrics, ILogger logger) =>
        options.Enabled ? new GatewayTracing(options, metrics, logger) : null;

    /// <summary>
    /// The span of a received PUBLISH, not made current (the read loop goes on with other packets): a child of the
    /// publisher's <c>traceparent</c> when it sent a valid one and propagation is on, else a root. Null when not sampled.
    /// A <c>traceparent</c> that does not parse is counted and ignored (logged once per gateway).
    /// </summary>
    public Activity? StartPublish(string? clientId, string topic, byte qos, int bodySize, MessageProperties? properties)
    {
        var incoming = default(ActivityContext);
        if (Propagation != TracePropagation.Off && FindTraceParent(properties) is { } value && !MqttTracing.TryParseTraceParent(value, out incoming))
        {
            metrics.TraceContextsInvalid.Add(1);
            if (Interlocked.Exchange(ref _invalidLogged, 1) == 0)
            {
                LogInvalidTraceParent(logger, clientId ?? "?", value.Length > 64 ? value[..64] + "…" : value);
            }
        }

        if (!MqttTracing.Source.HasListeners() || !_sampler.ShouldSample(clientId, topic, incoming))
        {
            return null;
        }

        // The broker's sampling decision stands even where the publisher's flags say it did not record its own span.
        var parent = incoming == default
            ? default
            : new ActivityContext(incoming.TraceId, incoming.SpanId, incoming.TraceFlags | ActivityTraceFlags.Recorded, incoming.TraceState, isRemote: true);
        var tags = new MqttMessageTags(topic, qos, clientId, bodySize).Tags(MqttTracing.Operations.Publish, MqttTracing.OperationTypes.Receive);
        return MqttTracing.StartDetached(MqttTracing.SpanName(MqttTracing.Operations.Publish, topic), ActivityKind.Server, parent, tags);
    }

    /// <summary>Ends a publish span once its message was routed to <paramref name="routed"/> sessions (-1: routing failed).</summary>
    public static void EndPublish(Activity? span, int routed)
    {
        if (span is null)
        {
            return;
        }

        span.SetTag(MqttTracing.Attributes.Sessions, routed);
        if (routed < 0)
        {
            span.SetStatus(ActivityStatusCode.Error, "routing failed");
        }

        span.Stop();
    }

    /// <summary>The span of a CONNECT, made current so the grain calls it makes carry it. Null when not sampled.</summary>
    public Activity? StartConnect(string? clientId) =>
        MqttTracing.Source.HasListeners() && _sampler.ShouldSample(clientId, null)
            ? MqttTracing.Source.StartActivity(MqttTracing.Operations.Connect, ActivityKind.Server, default(ActivityContext), OperationTags(MqttTracing.Operations.Connect, clientId))
            : null;

    /// <summary>
    /// The span of a SUBSCRIBE, made current so the session's grain call and its replication carry it. Null when not
    /// sampled; sampled always when a filter is on <c>Tracing:AlwaysSampleTopicFilters</c> or matched by one.
    /// </summary>
    public Activity? StartSubscribe(string? clientId, List<MqttTopicFilter> filters)
    {
        if (!MqttTracing.Source.HasListeners())
        {
            return null;
        }

        var always = false;
        foreach (var filter in filters)
        {
            always |= filter.Topic is { } f && _sampler.MatchesAlwaysFilter(f);
        }

        if (!always && !_sampler.ShouldSample(clientId, null))
        {
            return null;
        }

        var activity = MqttTracing.Source.StartActivity(MqttTracing.Operations.Subscribe, ActivityKind.Server, default(ActivityContext), OperationTags(MqttTracing.Operations.Subscribe, clientId));
        activity?.SetTag(MqttTracing.Attributes.Filters, filters.Count);
        return activity;
    }

    /// <summary>The span of a copy written to a subscriber: a child of the broker's context the message carries.</summary>
    public static Activity? StartSend(Delivery d, string? clientId) =>
        MqttTracing.StartHop(d.Message.TraceParent, MqttTracing.Operations.Send, MqttTracing.OperationTypes.Send, ActivityKind.Producer, new MqttMessageTags(d.Message.Topic, d.Qos, clientId, d.Message.Payload.Length));

    /// <summary>
    /// Sets the <c>traceparent</c> user property of a PUBLISH to a subscriber as <c>Tracing:Propagation</c> says:
    /// Replace puts the broker's context there (the send span's, else the last one the message carries), in place of
    /// the publisher's or added; PassThrough and Off leave the properties as published.
    /// </summary>
    public void ApplyPropagation(MqttPublishPacket packet, Delivery d, Activity? send)
    {
        if (Propagation != TracePropagation.Replace || (send is null && d.Message.TraceParent is null))
        {
            return;
        }

        var value = System.Text.Encoding.UTF8.GetBytes(send is null ? d.Message.TraceParent! : MqttTracing.TraceParentOf(send));
        var properties = packet.UserProperties ??= [];
        for (var i = 0; i < properties.Count; i++)
        {
            if (properties[i].Name == MqttTracing.TraceParentProperty)
            {
                properties[i] = new MqttUserProperty(MqttTracing.TraceParentProperty, value);
                return;
            }
        }

        properties.Add(new MqttUserProperty(MqttTracing.TraceParentProperty, value));
    }

    /// <summary>Records the subscriber's acknowledgement of a copy sent under <paramref name="send"/> (started and stopped now).</summary>
    public static void Settle(ActivityContext send, ushort packetId, string? clientId, string topic)
    {
        var tags = OperationTags(MqttTracing.Operations.Settle, clientId);
        using var activity = MqttTracing.StartDetached(MqttTracing.SpanName(MqttTracing.Operations.Settle, topic), ActivityKind.Consumer, send, tags);
        activity?.SetTag(MqttTracing.Attributes.OperationType, MqttTracing.OperationTypes.Settle);
        activity?.SetTag(MqttTracing.Attributes.PacketId, (int)packetId);
        activity?.SetTag(MqttTracing.Attributes.DestinationTemplate, MqttTracing.DestinationTemplate(topic));
    }

    private static string? FindTraceParent(MessageProperties? properties)
    {
        if (properties?.UserProperties is not { } list)
        {
            return null;
        }

        foreach (var p in list)
        {
            if (p.Name == MqttTracing.TraceParentProperty)
            {
                return p.Value;
            }
        }

        return null;
    }

    private static KeyValuePair<string, object?>[] OperationTags(string operation, string? clientId) =>
    [
        new(MqttTracing.Attributes.System, MqttTracing.Attributes.SystemName),
        new(MqttTracing.Attributes.OperationName, operation),
        new(MqttTracing.Attributes.ClientId, clientId),
    ];

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId} sent a traceparent user property that is not a W3C trace context ('{Value}'); it is ignored (counted in mqtt.tracing.invalid_traceparent, logged once)")]
    private static partial void LogInvalidTraceParent(ILogger logger, string clientId, string value);
}
