// Needed in the silo; the gateway's web SDK has it among its implicit usings.
#pragma warning disable IDE0005
using Microsoft.Extensions.DependencyInjection;
#pragma warning restore IDE0005
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Hosting;

/// <summary>The metrics every broker process exports: the broker's own instruments and the runtime's.</summary>
internal static class BrokerMetrics
{
    /// <summary>
    /// Registers OpenTelemetry metrics with the <see cref="MqttMetrics.MeterName"/> meter and the runtime's
    /// (<c>System.Runtime</c>: collections and pause time per generation, heap sizes, thread pool queue, CPU), a
    /// Prometheus scraping endpoint to map, and OTLP export when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set.
    /// </summary>
    public static void Add(IServiceCollection services, Microsoft.Extensions.Configuration.IConfiguration configuration)
    {
        services.AddMetrics();
        services.TryAddSingleton<MqttMetrics>();
        var metrics = services.AddOpenTelemetry().WithMetrics(m =>
        {
            m.AddMeter(MqttMetrics.MeterName);
            m.AddMeter("System.Runtime");
            // Every scrape reads the instruments afresh (no cached response), so a scrape right after an event sees it.
            m.AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
        });
        if (!string.IsNullOrEmpty(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            metrics.WithMetrics(m => m.AddOtlpExporter());
        }
    }
}
