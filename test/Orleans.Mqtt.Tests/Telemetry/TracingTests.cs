using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MQTTnet.Packets;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Telemetry;
using Xunit;

namespace Orleans.Mqtt.Tests.Telemetry;

/// <summary>The sampler, the <c>traceparent</c> parsing, the span names, the options' validation and the propagation modes.</summary>
[Collection(TracingCollection.Name)]
public sealed class TracingTests : IDisposable
{
    private const string Incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    private readonly ActivityListener _listener;

    public TracingTests()
    {
        // Records every span of the broker's source, as a tracer with everything sampled would.
        _listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == MqttTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public void Dispose() => _listener.Dispose();

    [Theory]
    [InlineData(Incoming, true)]
    [InlineData("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", true)]
    [InlineData("", false)]
    [InlineData("garbage", false)]
    [InlineData("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", false)]
    [InlineData("00-00000000000000000000000000000000-b7ad6b7169203331-01", false)]
    [InlineData("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", false)]
    [InlineData("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", false)]
    [InlineData("00-0af7651916cd43dd8448eb211c80319x-b7ad6b7169203331-01", false)]
    [InlineData("00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01", false)]
    public void Traceparent_parses_only_a_version_00_context_with_nonzero_ids(string value, bool valid)
    {
        Assert.Equal(valid, MqttTracing.TryParseTraceParent(value, out var context));
        if (valid)
        {
            Assert.Equal("0af7651916cd43dd8448eb211c80319c", context.TraceId.ToHexString());
            Assert.Equal("b7ad6b7169203331", context.SpanId.ToHexString());
            Assert.True(context.IsRemote);
        }
        else
        {
            Assert.Equal(default, context);
        }
    }

    [Theory]
    [InlineData("sensors", "sensors")]
    [InlineData("sensors/42", "sensors/+")]
    [InlineData("sensors/42/temp", "sensors/+/+")]
    [InlineData("/a/b", "/+/+")]
    [InlineData("a//", "a/+/+")]
    public void Destination_template_keeps_the_first_level_and_the_depth(string topic, string template)
    {
        Assert.Equal(template, MqttTracing.DestinationTemplate(topic));
        Assert.Equal($"publish {template}", MqttTracing.SpanName(MqttTracing.Operations.Publish, topic));
    }

    [Fact]
    public void Sampler_follows_the_lists_the_incoming_flag_and_the_ratio()
    {
        var draw = 0.5;
        var sampler = new TraceSampler(
            new TracingOptions { SamplingRatio = 0.3, AlwaysSampleClientIds = ["vip"], AlwaysSampleTopicFilters = ["alarms/#", "plant/+/door"] },
            () => draw);

        Assert.True(sampler.ShouldSample("vip", "x/y"));
        Assert.True(sampler.ShouldSample("other", "alarms/fire/3"));
        Assert.True(sampler.ShouldSample("other", "plant/7/door"));
        Assert.True(sampler.ShouldSample(null, "plant/+/door"));
        Assert.False(sampler.ShouldSample("other", "plant/7/window"));
        Assert.False(sampler.ShouldSample("other", null));
        MqttTracing.TryParseTraceParent(Incoming, out var sampled);
        Assert.True(sampler.ShouldSample("other", "x", sampled));
        MqttTracing.TryParseTraceParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", out var unsampled);
        Assert.False(sampler.ShouldSample("other", "x", unsampled));

        draw = 0.29;
        Assert.True(sampler.ShouldSample("other", "x"));
        Assert.False(new TraceSampler(new TracingOptions { SamplingRatio = 0 }, () => 0).ShouldSample("a", "b"));
        Assert.True(new TraceSampler(new TracingOptions { SamplingRatio = 1 }, () => 0.999).ShouldSample("a", "b"));
    }

    [Fact]
    public void Validator_names_each_bad_key()
    {
        var result = new TracingOptionsValidator().Validate(null, new TracingOptions
        {
            SamplingRatio = 1.5,
            AlwaysSampleClientIds = [""],
            AlwaysSampleTopicFilters = ["a/#/b"],
            Propagation = (TracePropagation)7,
            OtlpEndpoint = "collector:4317",
            FilePath = "/no/such/directory/spans.jsonl",
        });

        Assert.True(result.Failed);
        foreach (var key in new[] { "Tracing:SamplingRatio", "Tracing:AlwaysSampleClientIds:0", "Tracing:AlwaysSampleTopicFilters:0", "Tracing:Propagation", "Tracing:OtlpEndpoint", "Tracing:FilePath" })
        {
            Assert.Contains(result.Failures!, f => f.Contains(key, StringComparison.Ordinal));
        }

        Assert.True(new TracingOptionsValidator().Validate(null, new TracingOptions { Enabled = true, SamplingRatio = 1, OtlpEndpoint = "http://localhost:4317" }).Succeeded);
    }

    [Fact]
    public void A_malformed_traceparent_is_ignored_counted_and_logged_once()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new MqttMetrics(services.GetRequiredService<IMeterFactory>());
        var counted = 0L;
        using var meterListener = new MeterListener();
        meterListener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument == metrics.TraceContextsInvalid)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        meterListener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref counted, value));
        meterListener.Start();
        var logger = new CountingLogger();
        var tracing = GatewayTracing.Create(new TracingOptions { Enabled = true, SamplingRatio = 1 }, metrics, logger)!;
        var properties = new MessageProperties { UserProperties = [new UserProperty("traceparent", "not-a-context")] };

        using var first = tracing.StartPublish("c1", "a/b", 1, 3, properties);
        using var second = tracing.StartPublish("c1", "a/b", 1, 3, properties);

        // The publish is still traced, as one that came without a context: a root of its own.
        Assert.NotNull(first);
        Assert.Equal(default, first.ParentSpanId);
        Assert.Equal(2, Interlocked.Read(ref counted));
        Assert.Equal(1, logger.Warnings);
    }

    [Fact]
    public void A_valid_traceparent_is_continued_unless_propagation_is_off()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new MqttMetrics(services.GetRequiredService<IMeterFactory>());
        var properties = new MessageProperties { UserProperties = [new UserProperty("traceparent", Incoming)] };
        var on = GatewayTracing.Create(new TracingOptions { Enabled = true, SamplingRatio = 0 }, metrics, new CountingLogger())!;
        var off = GatewayTracing.Create(new TracingOptions { Enabled = true, SamplingRatio = 0, Propagation = TracePropagation.Off }, metrics, new CountingLogger())!;

        using var continued = on.StartPublish("c1", "a/b", 1, 3, properties);
        Assert.NotNull(continued);
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", continued.TraceId.ToHexString());
        Assert.Equal("b7ad6b7169203331", continued.ParentSpanId.ToHexString());
        Assert.Equal("publish a/+", continued.DisplayName);
        Assert.Equal("mqtt", continued.GetTagItem(MqttTracing.Attributes.System));
        Assert.Equal("a/b", continued.GetTagItem(MqttTracing.Attributes.Destination));

        // Off ignores the property; with ratio 0 nothing else samples it.
        Assert.Null(off.StartPublish("c1", "a/b", 1, 3, properties));
        Assert.Null(GatewayTracing.Create(new TracingOptions { Enabled = false }, metrics, new CountingLogger()));
    }

    [Theory]
    [InlineData(TracePropagation.Replace, true, "send")]
    [InlineData(TracePropagation.Replace, false, "carried")]
    [InlineData(TracePropagation.PassThrough, true, "incoming")]
    [InlineData(TracePropagation.Off, true, "incoming")]
    public void Delivered_traceparent_follows_the_propagation_setting(TracePropagation propagation, bool withSendSpan, string expected)
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var tracing = GatewayTracing.Create(new TracingOptions { Enabled = true, Propagation = propagation }, new MqttMetrics(services.GetRequiredService<IMeterFactory>()), new CountingLogger())!;
        const string Carried = "00-11111111111111111111111111111111-2222222222222222-01";
        var message = new MqttMessage
        {
            Topic = "a/b",
            Qos = 1,
            TraceParent = Carried,
            Properties = new MessageProperties { UserProperties = [new UserProperty("k", "v"), new UserProperty("traceparent", Incoming)] },
        };
        var delivery = new Delivery(1, message, 1, false, 5);
        var packet = MessageMapping.ToPublish(delivery, v5: true, DateTime.UtcNow);
        using var send = withSendSpan ? GatewayTracing.StartSend(delivery, "sub") : null;

        tracing.ApplyPropagation(packet, delivery, send);

        var values = packet.UserProperties!.Where(p => p.Name == "traceparent").Select(p => p.ReadValueAsString()).ToList();
        var value = Assert.Single(values);
        Assert.Equal("k", packet.UserProperties![0].Name);
        switch (expected)
        {
            case "send":
                Assert.Equal(send!.Id, value);
                Assert.Equal("11111111111111111111111111111111", send.TraceId.ToHexString());
                break;
            case "carried":
                Assert.Equal(Carried, value);
                break;
            default:
                Assert.Equal(Incoming, value);
                break;
        }
    }

    [Fact]
    public void Replace_adds_the_broker_context_when_the_publisher_sent_none()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var tracing = GatewayTracing.Create(new TracingOptions { Enabled = true }, new MqttMetrics(services.GetRequiredService<IMeterFactory>()), new CountingLogger())!;
        var delivery = new Delivery(1, new MqttMessage { Topic = "a", TraceParent = Incoming }, 0, false);
        var packet = MessageMapping.ToPublish(delivery, v5: true, DateTime.UtcNow);

        tracing.ApplyPropagation(packet, delivery, null);

        Assert.Equal(Incoming, Assert.Single(packet.UserProperties!).ReadValueAsString());

        var untraced = new Delivery(1, new MqttMessage { Topic = "a" }, 0, false);
        var plain = MessageMapping.ToPublish(untraced, v5: true, DateTime.UtcNow);
        tracing.ApplyPropagation(plain, untraced, null);
        Assert.Null(plain.UserProperties);
    }

    private sealed class CountingLogger : ILogger
    {
        private int _warnings;

        public int Warnings => Volatile.Read(ref _warnings);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning)
            {
                Interlocked.Increment(ref _warnings);
            }
        }
    }
}

/// <summary>Tests that listen to the broker's activity source run one after the other.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TracingCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Tracing";
}
