using Orleans.Mqtt.Grains;
using Xunit;

namespace Orleans.Mqtt.Tests.Storage;

/// <summary>The broker's own session state through the FASTER provider, across a crash.</summary>
public sealed class SessionStateStorageTests : IAsyncLifetime
{
    private readonly StorageTestHarness _harness = new();

    [Fact]
    public async Task Queued_messages_keep_payload_and_properties_across_a_crash()
    {
        var grainId = GrainId.Create("clientsession", "device-1");
        var message = new MqttMessage
        {
            Topic = "devices/1/cmd",
            Payload = new byte[] { 0, 1, 2, 254, 255 },
            Qos = 1,
            Properties = new MessageProperties
            {
                ContentType = "application/octet-stream",
                CorrelationData = [9, 8],
                UserProperties = [new UserProperty("a", "1"), new UserProperty("a", "2")],
            },
        };
        var state = new SessionState { SessionExpiryInterval = 60, LastPacketId = 41 };
        state.Subscriptions["devices/1/#"] = new Subscription("devices/1/#", 1, SubscriptionId: 5);
        state.Queue.Add(new SessionDelivery(message, 1, false, [5]));
        state.Inflight.Add(new InflightMessage { PacketId = 41, Delivery = new SessionDelivery(message, 1, true, null) });
        state.InboundQos2.Add(7);

        var storage = await _harness.OpenAsync();
        await storage.WriteStateAsync("session", grainId, new GrainState<SessionState>(state));

        // No graceful close: what the write acknowledged must be on disk.
        await storage.DisposeAsync();
        var recovered = await _harness.OpenAsync();
        var read = new GrainState<SessionState>(new SessionState());
        await recovered.ReadStateAsync("session", grainId, read);

        var s = read.State!;
        Assert.Equal(60u, s.SessionExpiryInterval);
        Assert.Equal((ushort)41, s.LastPacketId);
        Assert.Equal(5u, s.Subscriptions["devices/1/#"].SubscriptionId);
        Assert.Equal([7], s.InboundQos2);
        var queued = Assert.Single(s.Queue).Message;
        Assert.Equal(message.Payload.ToArray(), queued.Payload.ToArray());
        Assert.Equal("application/octet-stream", queued.Properties!.ContentType);
        Assert.Equal([9, 8], queued.Properties.CorrelationData!);
        Assert.Equal([new UserProperty("a", "1"), new UserProperty("a", "2")], queued.Properties.UserProperties!);
        var inflight = Assert.Single(s.Inflight);
        Assert.Equal((ushort)41, inflight.PacketId);
        Assert.True(inflight.Delivery.Retain);
        Assert.Equal(message.Payload.ToArray(), inflight.Delivery.Message.Payload.ToArray());
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _harness.DisposeAsync().AsTask();
}
