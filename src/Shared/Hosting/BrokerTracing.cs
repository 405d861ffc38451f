using System.Diagnostics;
using System.Text.Json;
// Needed in the silo; the gateway's web SDK has it among its implicit usings.
#pragma warning disable IDE0005
using Microsoft.Extensions.DependencyInjection;
#pragma warning restore IDE0005
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Hosting;

/// <summary>
/// The spans every broker process exports when <c>Tracing:Enabled</c>: the broker's own (<see cref="MqttTracing.SourceName"/>)
/// and Orleans' grain calls, which carry a trace from process to process. Exported by OTLP (<c>Tracing:OtlpEndpoint</c>)
/// and to a JSON-lines file (<c>Tracing:FilePath</c>). With tracing off nothing is registered, so nothing listens.
/// </summary>
internal static class BrokerTracing
{
    /// <summary>Binds and validates the <c>Tracing</c> section and, when enabled, registers the tracer provider.</summary>
    public static void Add(IServiceCollection services, Microsoft.Extensions.Configuration.IConfiguration configuration, string serviceName)
    {
        services.AddOptions<TracingOptions>().BindConfiguration(TracingOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TracingOptions>, TracingOptionsValidator>());
        var options = Read(configuration);
        if (!options.Enabled)
        {
            return;
        }

        services.AddOpenTelemetry()
            .ConfigureResource(r =>
            {
                // OTEL_SERVICE_NAME, when set, names the process instead.
                if (string.IsNullOrEmpty(configuration["OTEL_SERVICE_NAME"]))
                {
                    r.AddService(serviceName);
                }
            })
            .WithTracing(t =>
            {
                t.AddSource(MqttTracing.SourceName).AddSource(MqttTracing.OrleansSourceNames).SetSampler(new BrokerSampler());
                if (!string.IsNullOrEmpty(options.OtlpEndpoint))
                {
                    t.AddOtlpExporter(o => o.Endpoint = new Uri(options.OtlpEndpoint));
                }

                if (!string.IsNullOrEmpty(options.FilePath))
                {
                    // Batches every 200 ms (a file opened per batch, not per span); beyond 8,192 waiting spans new ones are dropped.
                    t.AddProcessor(new BatchActivityExportProcessor(new JsonLinesSpanExporter(options.FilePath, serviceName), maxQueueSize: 8192, scheduledDelayMilliseconds: 200, maxExportBatchSize: 2048));
                }
            });
    }

    /// <summary>Whether <c>Tracing:Enabled</c> is true (the hosts add Orleans' activity propagation then).</summary>
    public static bool IsEnabled(Microsoft.Extensions.Configuration.IConfiguration configuration) => Read(configuration).Enabled;

    private static TracingOptions Read(Microsoft.Extensions.Configuration.IConfiguration configuration)
    {
        var options = new TracingOptions();
        var section = configuration.GetSection(TracingOptions.SectionName);
        options.Enabled = bool.TryParse(section["Enabled"], out var enabled) && enabled;
        options.OtlpEndpoint = section["OtlpEndpoint"];
        options.FilePath = section["FilePath"];
        return options;
    }

    /// <summary>
    /// Records a span whose parent is recorded, and a root only when it is one of the broker's (it carries
    /// <c>messaging.system</c>): the broker's sampler (<see cref="TraceSampler"/>) already decided for those, and an
    /// Orleans grain call outside any traced operation (heartbeats, sweeps) starts nothing.
    /// </summary>
    private sealed class BrokerSampler : Sampler
    {
        private static readonly SamplingResult Record = new(SamplingDecision.RecordAndSample);
        private static readonly SamplingResult Drop = new(SamplingDecision.Drop);

        public override SamplingResult ShouldSample(in SamplingParameters samplingParameters)
        {
            if (samplingParameters.ParentContext.TraceId != default)
            {
                return (samplingParameters.ParentContext.TraceFlags & ActivityTraceFlags.Recorded) != 0 ? Record : Drop;
            }

            if (samplingParameters.Tags is { } tags)
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == MqttTracing.Attributes.System)
                    {
                        return Record;
                    }
                }
            }

            return Drop;
        }
    }

    /// <summary>
    /// Appends each ended span to a file as one JSON object per line (trace and span ids, parent, name, kind,
    /// start and end in Unix microseconds, status, attributes, service and process id). For debugging and tests.
    /// </summary>
    private sealed class JsonLinesSpanExporter(string path, string serviceName) : BaseExporter<Activity>
    {
        private readonly Lock _gate = new();
        private readonly int _processId = Environment.ProcessId;

        public override ExportResult Export(in Batch<Activity> batch)
        {
            var buffer = new MemoryStream();
            using (var json = new Utf8JsonWriter(buffer))
            {
                foreach (var activity in batch)
                {
                    Write(json, activity);
                    json.Flush();
                    buffer.WriteByte((byte)'\n');
                    json.Reset();
                }
            }

            try
            {
                lock (_gate)
                {
                    using var file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
                    buffer.Position = 0;
                    buffer.CopyTo(file);
                }

                return ExportResult.Success;
            }
            catch (IOException)
            {
                return ExportResult.Failure;
            }
        }

        private void Write(Utf8JsonWriter json, Activity activity)
        {
            json.WriteStartObject();
            json.WriteString("traceId", activity.TraceId.ToHexString());
            json.WriteString("spanId", activity.SpanId.ToHexString());
            json.WriteString("parentSpanId", activity.ParentSpanId == default ? null : activity.ParentSpanId.ToHexString());
            json.WriteString("name", activity.DisplayName);
            json.WriteString("source", activity.Source.Name);
            json.WriteString("kind", activity.Kind.ToString());
            json.WriteNumber("startUnixMicros", ToMicros(activity.StartTimeUtc));
            json.WriteNumber("endUnixMicros", ToMicros(activity.StartTimeUtc + activity.Duration));
            json.WriteString("status", activity.Status.ToString());
            json.WriteString("service", serviceName);
            json.WriteNumber("pid", _processId);
            json.WriteStartObject("attributes");
            foreach (var tag in activity.TagObjects)
            {
                switch (tag.Value)
                {
                    case null:
                        json.WriteNull(tag.Key);
                        break;
                    case int or long or short or byte or ushort or uint:
                        json.WriteNumber(tag.Key, Convert.ToInt64(tag.Value, System.Globalization.CultureInfo.InvariantCulture));
                        break;
                    case bool b:
                        json.WriteBoolean(tag.Key, b);
                        break;
                    default:
                        json.WriteString(tag.Key, Convert.ToString(tag.Value, System.Globalization.CultureInfo.InvariantCulture));
                        break;
                }
            }

            json.WriteEndObject();
            json.WriteEndObject();
        }

        private static long ToMicros(DateTime utc) => (utc.Ticks - DateTime.UnixEpoch.Ticks) / 10;
    }
}
