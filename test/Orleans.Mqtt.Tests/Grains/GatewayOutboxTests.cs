using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Telemetry;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

public sealed class GatewayOutboxTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly DeadGateways _dead = new();
    private readonly GatewayOutbox _outbox;

    public GatewayOutboxTests()
    {
        _outbox = new GatewayOutbox(_dead, new MqttMetrics(_services.GetRequiredService<IMeterFactory>()), TimeProvider.System, NullLogger<GatewayOutbox>.Instance);
    }

    public void Dispose()
    {
        _outbox.Dispose();
        _services.Dispose();
    }

    [Fact]
    public async Task Deliveries_for_a_gateway_restarted_under_the_same_id_never_travel_with_those_for_the_process_that_died()
    {
        // The process that died never answers; the new one, same gateway id, does.
        var dead = new Gateway(failures: int.MaxValue, hang: true);
        var live = new Gateway(failures: 0);
        _outbox.Send(new GatewayPresence(dead, "gw", 1), [Publish(1, qos: 1)]);
        _outbox.Send(new GatewayPresence(live, "gw", 2), [Publish(2, qos: 1)]);
        _outbox.Send(new GatewayPresence(dead, "gw", 1), [Publish(3, qos: 1)]);
        _outbox.Send(new GatewayPresence(live, "gw", 2), [Publish(4, qos: 1)]);

        var received = await live.WaitForAsync(2);
        Assert.Equal([2, 4], received.Select(d => (int)d.PacketId));
    }

    [Fact]
    public async Task A_failed_push_is_sent_again_with_dup_for_qos_1_and_2_and_not_for_qos_0()
    {
        var gateway = new Gateway(failures: 1);
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(1, qos: 0), Publish(2, qos: 1), Publish(3, qos: 2)]);
        await gateway.WaitForAttemptsAsync(1);
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(4, qos: 1)]);

        // The first push failed (the gateway may have written it all the same); what came after it waits its turn.
        var received = await gateway.WaitForAsync(3);
        Assert.Equal([(2, true), (3, true), (4, false)], received.Select(d => ((int)d.PacketId, d.Dup)));
    }

    [Fact]
    public async Task A_push_that_keeps_failing_is_sent_again_until_the_gateway_answers()
    {
        // Pushes to a live gateway fail for a while after a silo kill; giving up would freeze the connected client's
        // window until it reconnects.
        var gateway = new Gateway(failures: 8);
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(1, qos: 1)]);

        var received = await gateway.WaitForAsync(1);
        Assert.Equal([(1, true)], received.Select(d => ((int)d.PacketId, d.Dup)));
        Assert.Equal(9, gateway.Attempts);
    }

    [Fact]
    public async Task A_push_waiting_for_its_answer_when_a_silo_is_lost_is_sent_again_at_once()
    {
        // The answer to the first push never comes (it travelled through the killed silo); the gateway is alive.
        var gateway = new Gateway(failures: 1, hang: true);
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(1, qos: 1)]);
        await gateway.WaitForAttemptsAsync(1);

        Assert.Equal(1, _outbox.RetryPushesInFlight());
        var received = await gateway.WaitForAsync(1);
        Assert.Equal([(1, true)], received.Select(d => ((int)d.PacketId, d.Dup)));
    }

    [Fact]
    public async Task A_gateway_known_dead_is_not_pushed_to_again()
    {
        var gateway = new Gateway(failures: int.MaxValue);
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(1, qos: 1)]);
        await gateway.WaitForAttemptsAsync(1);
        _dead.Set(["gw"]);
        var attempts = gateway.Attempts;

        // A later send to the dead gateway is dropped at once; the retry loop, once it sees the gateway dead, stops.
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(2, qos: 1)]);
        var other = new Gateway(failures: 0);
        _outbox.Send(new GatewayPresence(other, "gw-other", 1), [Publish(3, qos: 1)]);
        await other.WaitForAsync(1);
        Assert.InRange(gateway.Attempts, attempts, attempts + 1);
    }

    private static Delivery Publish(ushort packetId, byte qos) =>
        new(0, new MqttMessage { Topic = "t", Qos = qos }, qos, false, packetId);

    private sealed class Gateway(int failures, bool hang = false) : IGatewayObserver
    {
        private readonly ConcurrentQueue<Delivery> _received = new();
        private readonly SemaphoreSlim _signal = new(0);
        private int _attempts;

        public int Attempts => Volatile.Read(ref _attempts);

        public async Task Deliver(Delivery[] deliveries)
        {
            var attempt = Interlocked.Increment(ref _attempts);
            _signal.Release();
            if (attempt <= failures)
            {
                if (hang)
                {
                    await Task.Delay(System.Threading.Timeout.Infinite);
                }

                throw new TimeoutException("no answer");
            }

            foreach (var d in deliveries)
            {
                _received.Enqueue(d);
            }

            _signal.Release();
        }

        public Task Disconnect(long connectionId, byte reasonCode) => Task.CompletedTask;

        public async Task<List<Delivery>> WaitForAsync(int count)
        {
            while (_received.Count < count)
            {
                Assert.True(await _signal.WaitAsync(Timeout), $"{_received.Count} of {count} deliveries arrived");
            }

            return [.. _received];
        }

        public async Task WaitForAttemptsAsync(int count)
        {
            while (Attempts < count)
            {
                Assert.True(await _signal.WaitAsync(Timeout), $"{Attempts} of {count} pushes tried");
            }
        }
    }
}
