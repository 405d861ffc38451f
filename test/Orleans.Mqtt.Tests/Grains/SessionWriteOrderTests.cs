using Xunit;
using System.Text;
using Orleans.Mqtt.Grains;
using Orleans.Runtime.Hosting;
using Orleans.Storage;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// When a session's write happens relative to its deliveries: a QoS 1 packet may reach the gateway while the
/// write that records it is on its way, a QoS 2 packet only after it; either way the publisher's call (its
/// PUBACK/PUBREC) completes only once the write has.
/// </summary>
public sealed class SessionWriteOrderTests : IAsyncLifetime
{
    private const int Shards = 4;
    private readonly WriteGate _gate = new();
    private InProcessTestCluster _cluster = null!;
    private RecordingGateway _gateway = null!;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        var gate = _gate;
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddGrainStorage(MqttGrainStorage.Name, (_, _) => new GatedGrainStorage(new SiloLocalGrainStorage(), gate));
            silo.AddMqttGrains(o => o.TopicShards = Shards);
        });
        _cluster = builder.Build();
        await _cluster.DeployAsync();
        _gateway = new RecordingGateway(_cluster.Client);
    }

    public async Task DisposeAsync()
    {
        _gate.Open();
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task A_qos1_delivery_goes_out_while_its_write_is_pending_and_the_publisher_waits_for_the_write()
    {
        var (topic, shard) = await SubscribeAsync("order-q1", qos: 1);
        _gate.Hold(topic);

        var publish = shard.Publish(Message(topic, qos: 1));
        var delivery = await _gateway.NextDeliveryAsync();

        Assert.Equal(1, delivery.Qos);
        Assert.Equal("payload", Encoding.UTF8.GetString(delivery.Message.Payload.Span));
        await _gate.FirstHeldWrite.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(publish.IsCompleted, "the publisher was answered before the session's write completed");

        _gate.Open();
        Assert.Equal(1, await publish.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_qos2_delivery_waits_for_its_write()
    {
        var (topic, shard) = await SubscribeAsync("order-q2", qos: 2);
        _gate.Hold(topic);

        var publish = shard.Publish(Message(topic, qos: 2));
        await _gate.FirstHeldWrite.WaitAsync(TimeSpan.FromSeconds(10));

        // The push would follow the start of the write at once; give it ample time to show up if it were sent.
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        Assert.False(_gateway.TryTakeDelivery(out _), "a QoS 2 packet reached the gateway before the session held it");
        Assert.False(publish.IsCompleted);

        _gate.Open();
        var delivery = await _gateway.NextDeliveryAsync();
        Assert.Equal(2, delivery.Qos);
        Assert.Equal(1, await publish.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private static MqttMessage Message(string topic, byte qos) =>
        new() { Topic = topic, Payload = Encoding.UTF8.GetBytes("payload"), Qos = qos };

    // A persistent session (only those are written) subscribed to a topic of its own, named after the client id.
    private async Task<(string Topic, ITopicShardGrain Shard)> SubscribeAsync(string prefix, byte qos)
    {
        var clientId = prefix + "-" + Guid.NewGuid().ToString("N")[..10];
        var session = _cluster.Client.GetGrain<IClientSessionGrain>(clientId);
        var presence = _gateway.NewConnection();
        await session.Connect(new ConnectRequest(presence, false, 300, null, 5, 0));
        await session.Subscribe(presence.ConnectionId, [new Subscription(clientId, qos)]);
        return (clientId, _cluster.Client.GetGrain<ITopicShardGrain>(Orleans.Mqtt.Topics.MqttTopic.ShardOf(clientId, Shards)));
    }

    /// <summary>Holds the writes of grains whose id contains a given text until opened.</summary>
    private sealed class WriteGate
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private volatile string? _key;

        public Task FirstHeldWrite => _held.Task;

        public void Hold(string key) => _key = key;

        public void Open() => _open.TrySetResult();

        public Task WaitIfHeldAsync(GrainId grainId)
        {
            if (_key is { } key && grainId.ToString().Contains(key, StringComparison.Ordinal))
            {
                _held.TrySetResult();
                return _open.Task;
            }

            return Task.CompletedTask;
        }
    }

    private sealed class GatedGrainStorage(IGrainStorage inner, WriteGate gate) : IGrainStorage
    {
        public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
            inner.ReadStateAsync(stateName, grainId, grainState);

        public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            await gate.WaitIfHeldAsync(grainId);
            await inner.WriteStateAsync(stateName, grainId, grainState);
        }

        public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            await gate.WaitIfHeldAsync(grainId);
            await inner.ClearStateAsync(stateName, grainId, grainState);
        }
    }
}
