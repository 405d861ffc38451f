using Orleans.Mqtt.Grains;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

public sealed class OutboundWindowTests
{
    private static readonly DateTime Now = new(2030, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    private static SessionDelivery Message(string topic, byte qos, DateTime? expiresAtUtc = null) =>
        new(new MqttMessage { Topic = topic, Qos = qos, ExpiresAtUtc = expiresAtUtc }, qos, false, null);

    [Fact]
    public void The_window_takes_queued_messages_in_order_up_to_its_size_and_the_rest_wait()
    {
        var state = new SessionState();
        var window = new OutboundWindow(state);
        foreach (var topic in new[] { "a", "b", "c" })
        {
            Assert.True(window.TryEnqueue(Message(topic, 1), maxQueued: 10));
        }

        Assert.Equal(0, window.Fill(2, Now));

        Assert.Equal(["a", "b"], state.Inflight.Select(m => m.Delivery.Message.Topic));
        Assert.Equal([(ushort)1, (ushort)2], state.Inflight.Select(m => m.PacketId));
        Assert.Equal("c", Assert.Single(state.Queue).Message.Topic);
    }

    [Fact]
    public void A_full_session_refuses_the_newest_message_counting_queue_and_window_together()
    {
        var state = new SessionState();
        var window = new OutboundWindow(state);
        Assert.True(window.TryEnqueue(Message("a", 1), maxQueued: 2));
        window.Fill(1, Now);
        Assert.True(window.TryEnqueue(Message("b", 1), maxQueued: 2));

        Assert.False(window.TryEnqueue(Message("c", 1), maxQueued: 2));
        Assert.Equal("b", Assert.Single(state.Queue).Message.Topic);
    }

    [Fact]
    public void Expired_messages_are_deleted_not_sent_and_counted()
    {
        var state = new SessionState();
        var window = new OutboundWindow(state);
        window.TryEnqueue(Message("old", 1, Now.AddSeconds(-1)), 10);
        window.TryEnqueue(Message("fresh", 1, Now.AddSeconds(10)), 10);

        Assert.Equal(1, window.Fill(10, Now));
        Assert.Equal("fresh", Assert.Single(state.Inflight).Delivery.Message.Topic);
        Assert.Empty(state.Queue);
    }

    [Fact]
    public void Qos1_ends_with_puback_and_qos2_with_pubrec_then_pubcomp()
    {
        var state = new SessionState();
        var window = new OutboundWindow(state);
        window.TryEnqueue(Message("one", 1), 10);
        window.TryEnqueue(Message("two", 2), 10);
        window.Fill(10, Now);

        Assert.False(window.Acknowledge(1, OutboundAck.PubComp));
        Assert.True(window.Acknowledge(1, OutboundAck.PubAck));
        Assert.False(window.Acknowledge(1, OutboundAck.PubAck));

        Assert.False(window.Acknowledge(2, OutboundAck.PubAck));
        Assert.True(window.Acknowledge(2, OutboundAck.PubRec));
        Assert.True(Assert.Single(state.Inflight).Released);
        Assert.True(window.Acknowledge(2, OutboundAck.PubComp));
        Assert.Empty(state.Inflight);
    }

    [Fact]
    public void Packet_ids_wrap_past_65535_to_1_and_skip_ids_still_in_flight()
    {
        var state = new SessionState { LastPacketId = ushort.MaxValue - 1 };
        var window = new OutboundWindow(state);
        window.TryEnqueue(Message("a", 1), 10);
        window.TryEnqueue(Message("b", 1), 10);
        window.Fill(10, Now);
        Assert.Equal([ushort.MaxValue, (ushort)1], state.Inflight.Select(m => m.PacketId));

        // 65535 is still in flight; 1 is acknowledged. From 65534 the next free ids are 1 (skipping 65535) and 2.
        window.Acknowledge(1, OutboundAck.PubAck);
        state.LastPacketId = ushort.MaxValue - 1;
        window.TryEnqueue(Message("c", 1), 10);
        window.TryEnqueue(Message("d", 1), 10);
        window.Fill(10, Now);

        Assert.Equal([ushort.MaxValue, (ushort)1, (ushort)2], state.Inflight.Select(m => m.PacketId));
    }
}
