using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Reflection;
using System.Text;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Telemetry;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Publishes the broker's <c>$SYS/broker/…</c> topics (retained, QoS 0) every <see cref="MqttGatewayOptions.SysInterval"/>:
/// version, uptime, connected clients, sessions, subscriptions, retained messages, messages and bytes. Counters are
/// this gateway's totals since it started, read from the broker's own meter; sessions, subscriptions and retained
/// messages are the cluster's, read from a silo's route replica. Subscriptions starting with a wildcard never match
/// them (topics starting with '$').
/// </summary>
internal sealed partial class SysTopicsPublisher(MqttGateway gateway, ILogger<SysTopicsPublisher> logger) : BackgroundService
{
    private static readonly string[] Counted =
    [
        "mqtt.messages.received", "mqtt.messages.sent", "mqtt.messages.dropped", "mqtt.bytes.received", "mqtt.bytes.sent",
    ];

    // One running total per counted instrument, handed to the listener as the instrument's state: a measurement on the
    // message path is one interlocked add, with no lookup and no allocation.
    private readonly ConcurrentDictionary<string, RunningTotal> _totals = new(StringComparer.Ordinal);
    private readonly long _started = gateway.TimeProvider.GetTimestamp();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = gateway.Options.SysInterval;
        if (interval <= TimeSpan.Zero)
        {
            return;
        }

        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == MqttMetrics.MeterName && Array.IndexOf(Counted, instrument.Name) >= 0)
            {
                l.EnableMeasurementEvents(instrument, _totals.GetOrAdd(instrument.Name, static _ => new RunningTotal()));
            }
        };
        listener.SetMeasurementEventCallback<long>(static (_, value, _, state) => Interlocked.Add(ref ((RunningTotal)state!).Value, value));
        listener.Start();

        var version = typeof(SysTopicsPublisher).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        using var timer = new PeriodicTimer(interval, gateway.TimeProvider);
        do
        {
            if (!gateway.IsReady)
            {
                continue;
            }

            try
            {
                await PublishAllAsync(version);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogPublishFailed(logger, ex);
            }
        }
        while (await NextTickAsync(timer, stoppingToken));
    }

    // Cancellation ends the loop quietly: the host also cancels a service that it disposes without having stopped
    // it (after a start that failed), and that is no failure of this service.
    private static async ValueTask<bool> NextTickAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private async Task PublishAllAsync(string version)
    {
        var values = new List<(string Topic, string Value)>
        {
            ("$SYS/broker/version", "Orleans.Mqtt " + version),
            ("$SYS/broker/uptime", $"{(long)gateway.TimeProvider.GetElapsedTime(_started).TotalSeconds} seconds"),
            ("$SYS/broker/clients/connected", Number(gateway.ConnectionCount)),
            ("$SYS/broker/messages/received", Number(Total("mqtt.messages.received"))),
            ("$SYS/broker/messages/sent", Number(Total("mqtt.messages.sent"))),
            ("$SYS/broker/messages/dropped", Number(Total("mqtt.messages.dropped"))),
            ("$SYS/broker/bytes/received", Number(Total("mqtt.bytes.received"))),
            ("$SYS/broker/bytes/sent", Number(Total("mqtt.bytes.sent"))),
        };

        var hosts = await gateway.GrainFactory.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        if (hosts.Keys.FirstOrDefault() is { } silo)
        {
            var stats = await gateway.GrainFactory.GetGrain<IRouteReplicaGrain>(silo.ToParsableString()).GetStats();
            values.Add(("$SYS/broker/sessions", Number(stats.Sessions)));
            values.Add(("$SYS/broker/subscriptions/count", Number(stats.Subscriptions)));
            values.Add(("$SYS/broker/retained messages/count", Number(stats.Retained)));
        }

        var publishes = new List<Task>(values.Count);
        foreach (var (topic, value) in values)
        {
            var message = new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes(value), Retain = true };
            publishes.Add(gateway.Shard(MqttTopic.ShardOf(topic, gateway.TopicShards)).Publish(message));
        }

        await Task.WhenAll(publishes);
    }

    private long Total(string instrument) => _totals.TryGetValue(instrument, out var total) ? Interlocked.Read(ref total.Value) : 0;

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private sealed class RunningTotal
    {
        public long Value;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publishing the $SYS topics failed; the next interval retries")]
    private static partial void LogPublishFailed(ILogger logger, Exception ex);
}
