using System.Diagnostics;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// A subscriber that never reads costs the gateway at most <c>Mqtt:MaxPendingWriteBytes</c> of queued QoS 0
/// messages, the rest are dropped and counted, and the memory is given back when it leaves. A client cannot hold a
/// partly sent packet open past <c>Mqtt:PacketReadTimeout</c>.
/// </summary>
public sealed class SlowConsumerTests : IAsyncLifetime
{
    private const string PendingBytes = "mqtt_connections_pending_write_bytes";
    private const string Dropped = "mqtt_messages_dropped_total";
    private const string SlowConsumer = "reason=\"slow_consumer\"";
    private const long Budget = 1024 * 1024;
    private const int PayloadSize = 1_000_000;
    private const int Messages = 64;

    private BrokerProcess _broker = null!;

    public async Task InitializeAsync() => _broker = await BrokerProcess.StartAsync(new Dictionary<string, string>
    {
        ["Mqtt__PacketReadTimeout"] = "00:00:02",
    });

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    [Fact]
    public async Task Qos0_for_a_subscriber_that_never_reads_stays_within_the_byte_budget_and_is_released_when_it_leaves()
    {
        var droppedBefore = await _broker.GetCounterAsync(Dropped, SlowConsumer);
        var sentBefore = await _broker.GetCounterAsync("mqtt_messages_sent_total");
        var subscriber = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "never-reads");
        await subscriber.SendAsync(RawMqttClient.Subscribe(1, false, ("slow/consumer", 0)));
        Assert.Equal(0x90, (await subscriber.ReadPacketAsync())!.Value.Header);

        // From here on the subscriber reads nothing.
        await using var publisher = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "floods");
        var publish = RawMqttClient.Publish("slow/consumer", new byte[PayloadSize]);
        for (var i = 0; i < Messages; i++)
        {
            await publisher.SendAsync(publish);
        }

        // Every message is written (into the socket buffers, which fill up), queued or dropped; wait for that, and
        // watch the queued bytes meanwhile.
        var maxPending = 0.0;
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var text = await _broker.GetMetricsAsync();
            var pending = Metrics.Sum(text, PendingBytes);
            maxPending = Math.Max(maxPending, pending);
            var dropped = Metrics.Sum(text, Dropped, SlowConsumer) - droppedBefore;
            var sent = Metrics.Sum(text, "mqtt_messages_sent_total") - sentBefore;
            var queued = Math.Round(pending / (PayloadSize + "slow/consumer".Length));
            if (dropped > 0 && sent + dropped + queued >= Messages)
            {
                break;
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(15), $"after {watch.Elapsed}: sent {sent}, dropped {dropped}, queued {queued}");
            await Task.Delay(50);
        }

        Assert.InRange(maxPending, 0, Budget);
        await _broker.WaitForOutputAsync(l => l.Contains("never-reads", StringComparison.Ordinal) && l.Contains("not sent: slow_consumer", StringComparison.Ordinal));

        // The subscriber leaves (closing with unread data resets the connection): nothing stays queued.
        await subscriber.DisposeAsync();
        watch.Restart();
        while (await _broker.GetCounterAsync(PendingBytes) > 0)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), "queued bytes not released after the subscriber left");
            await Task.Delay(50);
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public async Task A_packet_left_incomplete_closes_the_connection_after_the_packet_read_timeout(byte level)
    {
        var before = await _broker.GetCounterAsync("mqtt_connections_closed_total", "reason=\"packet_read_timeout\"");
        await using var client = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await client.SendAsync(RawMqttClient.Connect(level, $"partial-{level}", keepAlive: 0));
        Assert.Equal(0x20, (await client.ReadPacketAsync())!.Value.Header);

        // A PUBLISH announcing 1 MiB less a little, then 5 bytes of it and nothing more (keep alive 0: no other limit).
        var header = new List<byte> { 0x30 };
        RawMqttClient.AppendVariableByteInteger(header, (1024 * 1024) - 16);
        await client.SendAsync([.. header, 0x00, 0x03, (byte)'a', (byte)'/', (byte)'b']);

        var watch = Stopwatch.StartNew();
        var packets = await client.ReadUntilClosedAsync(TimeSpan.FromSeconds(10));
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(6));
        if (level == 5)
        {
            Assert.Equal([(byte)0xE0], packets.Select(p => p.Header));
        }

        Assert.True(await _broker.GetCounterAsync("mqtt_connections_closed_total", "reason=\"packet_read_timeout\"") > before);
    }
}
