using System.Diagnostics;
using MQTTnet;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// Traces through real processes: a publish on gateway A to a subscriber on gateway B is one trace across both
/// gateways and the silos, CONNECT and SUBSCRIBE carry their trace into the silos, and the delivered PUBLISH's
/// <c>traceparent</c> follows <c>Tracing:Propagation</c> (Replace here; PassThrough and Off in
/// <see cref="TracePropagationTests"/>). Every member writes its spans to a file (<c>Tracing:FilePath</c>).
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class TracingTests(ClusterFixture cluster)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    private string[] Files => [.. cluster.Gateways.Concat(cluster.Silos).Select(m => Path.Combine(m.WorkingDirectory, ClusterFixture.SpansFileName))];

    private string GatewayFile(int index) => Path.Combine(cluster.Gateways[index].WorkingDirectory, ClusterFixture.SpansFileName);

    [Fact]
    public async Task A_publish_with_a_traceparent_is_one_ordered_trace_from_gateway_A_through_the_silos_to_gateway_B_and_the_copy_carries_the_brokers_context()
    {
        var run = Guid.NewGuid().ToString("N")[..10];
        var topic = $"traced/{run}/dev/temp";
        var incomingTrace = ActivityTraceId.CreateRandom().ToHexString();
        var incomingSpan = ActivitySpanId.CreateRandom().ToHexString();
        var incoming = $"00-{incomingTrace}-{incomingSpan}-01";
        var publisherId = "tp-" + run;

        var delivered = await RoundTripAsync(cluster.GatewayBMqttPort, cluster.GatewayAMqttPort, ClusterFixture.TracedClientId, publisherId, $"traced/{run}/#", topic, incoming);

        var spans = await SpanFiles.WaitAsync(Files, s => s.Count(x => x.TraceId == incomingTrace) >= 5 && s.Any(x => x.TraceId == incomingTrace && x.Name.StartsWith("settle", StringComparison.Ordinal)), Timeout);
        var trace = spans.Where(s => s.TraceId == incomingTrace).ToList();
        var publish = Single(trace, "publish traced/+/+/+");
        var route = Single(trace, "route traced/+/+/+");
        var deliver = Single(trace, "deliver traced/+/+/+");
        var send = Single(trace, "send traced/+/+/+");
        var settle = Single(trace, "settle traced/+/+/+");

        // One chain: the publisher's span, then gateway A, a silo's shard, the subscriber's session, gateway B.
        Assert.Equal(incomingSpan, publish.ParentSpanId);
        Assert.Equal(publish.SpanId, route.ParentSpanId);
        Assert.Equal(route.SpanId, deliver.ParentSpanId);
        Assert.Equal(deliver.SpanId, send.ParentSpanId);
        Assert.Equal(send.SpanId, settle.ParentSpanId);
        Assert.Equal(GatewayFile(0), publish.File);
        Assert.Equal(GatewayFile(1), send.File);
        Assert.Equal(GatewayFile(1), settle.File);
        Assert.DoesNotContain(route.File, new[] { GatewayFile(0), GatewayFile(1) });
        Assert.DoesNotContain(deliver.File, new[] { GatewayFile(0), GatewayFile(1) });
        Assert.True(new[] { publish.Pid, route.Pid, deliver.Pid, send.Pid }.Distinct().Count() >= 3);

        // In order across the processes (one machine, one clock): each starts after its parent, and the PUBACK to
        // the publisher (end of publish) comes after the session stored the copy (end of deliver).
        Assert.True(publish.Start <= route.Start && route.Start <= deliver.Start && deliver.Start <= send.Start && send.Start <= settle.Start, Describe(trace));
        Assert.True(deliver.End <= route.End && route.End <= publish.End, Describe(trace));

        // Messaging attributes, and span names from the operation and a template, never the raw topic.
        foreach (var (span, type) in new[] { (publish, "receive"), (route, "process"), (deliver, "process"), (send, "send"), (settle, "settle") })
        {
            Assert.Equal("mqtt", span.Attribute("messaging.system"));
            Assert.Equal(type, span.Attribute("messaging.operation.type"));
            Assert.DoesNotContain(run, span.Name, StringComparison.Ordinal);
        }

        Assert.Equal(topic, publish.Attribute("messaging.destination.name"));
        Assert.Equal("traced/+/+/+", publish.Attribute("messaging.destination.template"));
        Assert.Equal(publisherId, publish.Attribute("messaging.client.id"));
        Assert.Equal(ClusterFixture.TracedClientId, send.Attribute("messaging.client.id"));
        Assert.Equal("1", publish.Attribute("mqtt.qos"));
        Assert.Equal("1", send.Attribute("mqtt.qos"));

        // Replace: the subscriber gets the context of gateway B's send span, in the publisher's trace; not the incoming one.
        Assert.Equal($"00-{incomingTrace}-{send.SpanId}-01", Assert.Single(delivered));
    }

    [Fact]
    public async Task Connect_and_subscribe_carry_their_trace_through_grain_calls_to_the_ownership_commit_and_to_every_silo()
    {
        var run = Guid.NewGuid().ToString("N")[..10];
        var before = SpanFiles.Read(GatewayFile(1)).Select(s => s.SpanId).ToHashSet();
        using (var client = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort, ClusterFixture.TracedClientId))
        {
            await client.SubscribeAsync($"traced/{run}/#", MqttQualityOfServiceLevel.AtLeastOnce);
            await client.DisconnectAsync();
        }

        var liveSilos = cluster.Silos.Where(s => !s.HasExited).Select(s => Path.Combine(s.WorkingDirectory, ClusterFixture.SpansFileName)).ToHashSet();
        SpanRecord? connect = null, subscribe = null;
        var spans = await SpanFiles.WaitAsync(Files, s =>
        {
            connect = s.LastOrDefault(x => x.Name == "connect" && x.File == GatewayFile(1) && !before.Contains(x.SpanId) && x.Attribute("messaging.client.id") == ClusterFixture.TracedClientId);
            subscribe = s.LastOrDefault(x => x.Name == "subscribe" && x.File == GatewayFile(1) && !before.Contains(x.SpanId) && x.Attribute("messaging.client.id") == ClusterFixture.TracedClientId);
            return connect is not null && subscribe is not null
                && s.Any(x => x.TraceId == connect.TraceId && x.Name == "ownership commit")
                && s.Where(x => x.TraceId == subscribe.TraceId).Select(x => x.File).Intersect(liveSilos).Count() == liveSilos.Count
                && Complete(s, connect.TraceId, liveSilos) && Complete(s, subscribe.TraceId, liveSilos);
        }, Timeout);

        // Orleans' own calls outside a traced operation (heartbeats, sweeps, membership) start no trace.
        Assert.DoesNotContain(spans, s => s.Source.StartsWith("Microsoft.Orleans.", StringComparison.Ordinal) && s.ParentSpanId is null);

        // CONNECT: authentication on the gateway; the ownership commit in the session's silo, below the connect span
        // through Orleans' grain-call spans.
        var connectTrace = spans.Where(s => s.TraceId == connect!.TraceId).ToList();
        Assert.Equal(connect!.SpanId, Single(connectTrace, "authenticate").ParentSpanId);
        var commit = Single(connectTrace, "ownership commit");
        Assert.Contains(commit.File, liveSilos);
        AssertDescendant(connectTrace, commit, connect);
        Assert.Contains(connectTrace, s => s.Source.StartsWith("Microsoft.Orleans.", StringComparison.Ordinal) && s.File == GatewayFile(1));

        // SUBSCRIBE: the replication in the session's silo, and the replica calls it made, on every live silo.
        var subscribeTrace = spans.Where(s => s.TraceId == subscribe!.TraceId).ToList();
        var replicate = Single(subscribeTrace, "replicate");
        AssertDescendant(subscribeTrace, replicate, subscribe!);
        foreach (var file in liveSilos)
        {
            var inSilo = subscribeTrace.Where(s => s.File == file).ToList();
            Assert.NotEmpty(inSilo);
            foreach (var span in inSilo)
            {
                AssertDescendant(subscribeTrace, span, subscribe!);
            }
        }
    }

    // Subscribes, publishes one QoS 1 message with the given traceparent, returns the delivered traceparent values.
    internal static async Task<List<string>> RoundTripAsync(int subscriberPort, int publisherPort, string subscriberId, string publisherId, string filter, string topic, string? traceParent)
    {
        var received = new TaskCompletionSource<MqttApplicationMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscriber = await MqttClients.ConnectAsync(subscriberPort, subscriberId);
        subscriber.ApplicationMessageReceivedAsync += async e =>
        {
            // The PUBACK goes out before the test goes on and disconnects: otherwise the DISCONNECT can overtake it,
            // and the gateway never sees the acknowledgement its settle span waits for.
            e.AutoAcknowledge = false;
            await e.AcknowledgeAsync(CancellationToken.None);
            received.TrySetResult(e.ApplicationMessage);
        };
        await subscriber.SubscribeAsync(filter, MqttQualityOfServiceLevel.AtLeastOnce);

        using var publisher = await MqttClients.ConnectAsync(publisherPort, publisherId);
        var message = new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("21.5").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithUserProperty("unit", "C"u8.ToArray());
        if (traceParent is not null)
        {
            message.WithUserProperty("traceparent", System.Text.Encoding.UTF8.GetBytes(traceParent));
        }

        var ack = await publisher.PublishAsync(message.Build());
        Assert.True(ack.IsSuccess, ack.ReasonString);
        var delivery = await received.Task.WaitAsync(Timeout);
        Assert.Equal("C", Assert.Single(delivery.UserProperties, p => p.Name == "unit").ReadValueAsString());
        await publisher.DisconnectAsync();
        await subscriber.DisconnectAsync();
        return [.. (delivery.UserProperties ?? []).Where(p => p.Name == "traceparent").Select(p => p.ReadValueAsString())];
    }

    // A span is written when it ends, so a parent (a grain call's server span around the replication) is written after
    // its children: a trace is read once the parent of each of its spans in the silos has been written too.
    private static bool Complete(IEnumerable<SpanRecord> spans, string traceId, HashSet<string> siloFiles)
    {
        var trace = spans.Where(x => x.TraceId == traceId).ToList();
        var ids = trace.Select(x => x.SpanId).ToHashSet();
        return trace.Where(x => siloFiles.Contains(x.File)).All(x => x.ParentSpanId is null || ids.Contains(x.ParentSpanId));
    }

    private static SpanRecord Single(List<SpanRecord> trace, string name) =>
        trace.Where(s => s.Name == name).ToList() is [var span] ? span : throw new Xunit.Sdk.XunitException($"not one span '{name}':\n{Describe(trace)}");

    private static void AssertDescendant(List<SpanRecord> trace, SpanRecord span, SpanRecord ancestor)
    {
        var bySpanId = trace.ToDictionary(s => s.SpanId);
        for (var current = span; current.ParentSpanId is { } parent; current = bySpanId[parent])
        {
            if (parent == ancestor.SpanId)
            {
                Assert.True(ancestor.Start <= span.Start, Describe(trace));
                return;
            }

            if (!bySpanId.ContainsKey(parent))
            {
                break;
            }
        }

        throw new Xunit.Sdk.XunitException($"'{span.Name}' ({span.File}) is not below '{ancestor.Name}':\n{Describe(trace)}");
    }

    private static string Describe(List<SpanRecord> trace) =>
        string.Join('\n', trace.OrderBy(s => s.Start).Select(s => $"{s.Start} {s.End} {Path.GetFileName(Path.GetDirectoryName(s.File))} {s.SpanId} <- {s.ParentSpanId} '{s.Name}'"));
}

/// <summary>A standalone broker with tracing on and <c>Tracing:Propagation</c> Off.</summary>
public sealed class TracePropagationOffBroker() : ConfiguredBroker(new()
{
    ["Tracing__Enabled"] = "true",
    ["Tracing__SamplingRatio"] = "0",
    ["Tracing__AlwaysSampleTopicFilters__0"] = ClusterFixture.TracedTopicFilter,
    ["Tracing__Propagation"] = "Off",
    ["Tracing__FilePath"] = SpansFile,
}), IAsyncLifetime
{
    /// <summary>The broker's span file, deleted with the broker.</summary>
    public static readonly string SpansFile = Path.Combine(Path.GetTempPath(), $"orleans-mqtt-spans-{Guid.NewGuid():N}.jsonl");

    Task IAsyncLifetime.InitializeAsync() => InitializeAsync();

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        File.Delete(SpansFile);
    }
}

/// <summary>The delivered <c>traceparent</c> under PassThrough (the shared standalone broker) and Off.</summary>
[Collection(SharedBrokerCollection.Name)]
public sealed class TracePropagationTests(SharedBroker shared, TracePropagationOffBroker off) : IClassFixture<TracePropagationOffBroker>
{
    [Fact]
    public async Task PassThrough_continues_the_incoming_trace_and_delivers_the_publishers_traceparent_unchanged()
    {
        var run = Guid.NewGuid().ToString("N")[..10];
        var trace = ActivityTraceId.CreateRandom().ToHexString();
        var incoming = $"00-{trace}-{ActivitySpanId.CreateRandom().ToHexString()}-01";
        var port = shared.Broker.MqttPort;

        var delivered = await TracingTests.RoundTripAsync(port, port, "pt-sub-" + run, "pt-pub-" + run, $"other/{run}/#", $"other/{run}/x", incoming);

        Assert.Equal(incoming, Assert.Single(delivered));
        var spans = await SpanFiles.WaitAsync([shared.SpansFile], s => s.Any(x => x.TraceId == trace && x.Name.StartsWith("send", StringComparison.Ordinal)), TimeSpan.FromSeconds(15));
        Assert.Contains(spans, s => s.TraceId == trace && s.Name == "publish other/+/+");
    }

    [Fact]
    public async Task Off_neither_continues_nor_adds_a_traceparent()
    {
        var run = Guid.NewGuid().ToString("N")[..10];
        var trace = ActivityTraceId.CreateRandom().ToHexString();
        var incoming = $"00-{trace}-{ActivitySpanId.CreateRandom().ToHexString()}-01";
        var port = off.Broker.MqttPort;

        // A traced topic without a traceparent: traced, yet nothing added.
        var none = await TracingTests.RoundTripAsync(port, port, "off-sub-" + run, "off-pub-" + run, $"traced/{run}/#", $"traced/{run}/a", null);
        Assert.Empty(none);

        // With one: delivered as published, and the broker's trace is its own.
        var passed = await TracingTests.RoundTripAsync(port, port, "off-sub2-" + run, "off-pub2-" + run, $"traced/{run}/#", $"traced/{run}/b", incoming);
        Assert.Equal(incoming, Assert.Single(passed));
        var spans = await SpanFiles.WaitAsync([TracePropagationOffBroker.SpansFile], s => s.Count(x => x.Name == "send traced/+/+") >= 2, TimeSpan.FromSeconds(15));
        Assert.DoesNotContain(spans, s => s.TraceId == trace);
        Assert.All(spans.Where(s => s.Name == "publish traced/+/+"), s => Assert.Null(s.ParentSpanId));
    }
}
