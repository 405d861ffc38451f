using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Telemetry;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// The gateway's once-a-second sweep over its connections (keep alive, connect and partial-packet timeouts) runs for
/// every idle connection the whole time it is held, so it must not allocate per connection: a copy of the connection
/// table at 16,000 connections is a 128 KB array on the large object heap every second, which only a full collection
/// frees, and an idle gateway's memory grew with it.
/// </summary>
public sealed class KeepAliveSweepTests
{
    [Fact]
    public void The_sweep_over_many_idle_connections_allocates_no_copy_of_them()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var time = new FakeTimeProvider();
        using var gateway = new MqttGateway(
            null!,
            Options.Create(new MqttGatewayOptions()),
            Options.Create(new MqttBrokerOptions()),
            new MqttMetrics(services.GetRequiredService<IMeterFactory>()),
            time,
            NullLoggerFactory.Instance);
        for (var i = 0; i < 20_000; i++)
        {
            gateway.Register(new MqttConnection(new DefaultConnectionContext($"c{i}"), gateway));
        }

        gateway.Sweep();
        var before = GC.GetAllocatedBytesForCurrentThread();
        gateway.Sweep();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        // Nothing timed out (the clock did not move), and the sweep cost at most an enumerator, not 8 bytes per connection.
        Assert.Equal(20_000, gateway.ConnectionCount);
        Assert.InRange(allocated, 0, 1024);
    }
}
