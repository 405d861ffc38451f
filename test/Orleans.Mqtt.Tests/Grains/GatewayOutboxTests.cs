using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Telemetry;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

public sealed class GatewayOutboxTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly DeadGateways _dead = new();
    private readonly StopLog _log = new();
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _dropped = new();
    private readonly GatewayOutbox _outbox;

    public GatewayOutboxTests()
    {
        var meters = _services.GetRequiredService<IMeterFactory>();

        // Only this test's meter: other tests create the same instruments in the same process.
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, meters) && instrument.Name == "mqtt.messages.dropped")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "reason")
                {
                    _dropped.AddOrUpdate((string)tag.Value!, value, (_, sum) => sum + value);
                }
            }
        });
        _listener.Start();
        _outbox = new GatewayOutbox(_dead, new MqttMetrics(meters), TimeProvider.System, _log);
    }

    public void Dispose()
    {
        _outbox.Dispose();
        _listener.Dispose();
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

    [Fact]
    public async Task Deliveries_queued_when_the_silo_stops_are_pushed_before_its_messaging_stops()
    {
        // The first push is slow: what comes after it is still queued when the stop begins.
        var gateway = new Gateway(failures: 0, release: new TaskCompletionSource());
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(1, qos: 0)]);
        await gateway.WaitForAttemptsAsync(1);
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(2, qos: 0), Publish(3, qos: 1)]);

        var stop = _outbox.StopAsync(Timeout, CancellationToken.None);
        Assert.False(stop.IsCompleted);
        gateway.Release();
        await stop.WaitAsync(Timeout);

        var received = await gateway.WaitForAsync(3);
        Assert.Equal([1, 2, 3], received.Select(d => (int)d.PacketId));
        Assert.Empty(_dropped);
        Assert.Equal([(LogLevel.Information, "Silo stopping: 3 deliveries pushed to 1 gateway processes")], _log.Lines.Select(l => (l.Level, l.Text[..l.Text.IndexOf(" in ", StringComparison.Ordinal)])));
    }

    [Fact]
    public void Deliveries_a_stopping_silo_cannot_push_are_counted_and_logged()
    {
        // The gateway never answers: one push waits for it, the next one is queued behind it.
        var gateway = new Gateway(failures: int.MaxValue, hang: true);
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(1, qos: 0), Publish(2, qos: 1)]);
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(3, qos: 0), Publish(4, qos: 2), Publish(5, qos: 0)]);

        // The host goes away without the silo's stop (or after it gave up): nothing may vanish unnoticed either way.
        _outbox.Dispose();

        // QoS 1/2 messages stay in flight in their sessions and go out again: not dropped.
        Assert.Equal(3, _dropped.GetValueOrDefault("silo_stopping"));
        Assert.Single(_dropped);
        var line = Assert.Single(_log.Lines);
        Assert.Equal(LogLevel.Warning, line.Level);
        Assert.Contains("not pushed: 3 QoS 0 ones (dropped) and 2 QoS 1/2 ones", line.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stop_gives_up_on_a_gateway_that_does_not_answer_after_the_drain_time()
    {
        var gateway = new Gateway(failures: int.MaxValue, hang: true);
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(1, qos: 1)]);
        await gateway.WaitForAttemptsAsync(1);
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(2, qos: 0)]);

        await _outbox.StopAsync(TimeSpan.FromMilliseconds(100), CancellationToken.None).WaitAsync(Timeout);

        // Sent after the stop: not queued, counted.
        _outbox.Send(new GatewayPresence(gateway, "gw", 1), [Publish(3, qos: 0)]);
        Assert.Equal(2, _dropped.GetValueOrDefault("silo_stopping"));
        var line = Assert.Single(_log.Lines);
        Assert.Contains("not pushed: 1 QoS 0 ones (dropped) and 1 QoS 1/2 ones", line.Text, StringComparison.Ordinal);
        Assert.Equal(1, gateway.Attempts);
    }

    private static Delivery Publish(ushort packetId, byte qos) =>
        new(0, new MqttMessage { Topic = "t", Qos = qos }, qos, false, packetId);

    private sealed class Gateway(int failures, bool hang = false, TaskCompletionSource? release = null) : IGatewayObserver
    {
        private readonly ConcurrentQueue<Delivery> _received = new();
        private readonly SemaphoreSlim _signal = new(0);
        private int _attempts;

        public int Attempts => Volatile.Read(ref _attempts);

        public void Release() => release!.SetResult();

        public async Task Deliver(Delivery[] deliveries)
        {
            var attempt = Interlocked.Increment(ref _attempts);
            _signal.Release();
            if (release is not null)
            {
                await release.Task;
            }

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

    private sealed class StopLog : ILogger<GatewayOutbox>
    {
        private readonly ConcurrentQueue<(LogLevel Level, string Text)> _lines = new();

        // Only the stop's lines: the push failures of the hanging gateways are not what these tests read.
        public IEnumerable<(LogLevel Level, string Text)> Lines => _lines.Where(l => l.Text.StartsWith("Silo stopping", StringComparison.Ordinal));

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _lines.Enqueue((logLevel, formatter(state, exception)));
    }
}
