using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

public sealed class GatewayTrafficTests
{
    [Fact]
    public void The_report_carries_this_hosts_counters_and_not_another_hosts_in_the_same_process()
    {
        var metrics = NewMetrics();
        var other = NewMetrics();
        using var traffic = new GatewayTraffic(metrics, new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)));

        metrics.ConnectionsActive.Add(3);
        metrics.ConnectionsActive.Add(-1);
        metrics.MessagesReceived.Add(5);
        metrics.MessagesSent.Add(7);
        metrics.CountDrop(DropReason.ConnectionGone);
        metrics.BytesReceived.Add(100);
        metrics.BytesSent.Add(200);
        other.MessagesReceived.Add(1000);
        other.ConnectionsActive.Add(50);

        var report = traffic.Report("gw");

        Assert.Equal("gw", report.GatewayId);
        Assert.Equal(2, report.ConnectedClients);
        Assert.Equal(new TrafficCounters(5, 7, 1, 100, 200), report.Traffic);
        Assert.Equal(new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc), report.StartedAtUtc);
        Assert.NotEqual(0, report.Incarnation);
    }

    private static MqttMetrics NewMetrics() =>
        new(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>());
}
