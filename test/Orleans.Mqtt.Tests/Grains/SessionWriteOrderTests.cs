using Xunit;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Grains;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using Orleans.Storage;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// A session's write comes before what depends on it: its QoS 1/2 packet reaches the gateway only once the
/// session's write holds it, and the publisher's call (its PUBACK/PUBREC) completes only after that write.
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
            silo.Services.AddGrainStorage(MqttGrainStorage.Name, (services, _) => new GatedGrainStorage(new SiloLocalGrainStorage(services.GetRequiredService<DeepCopier>()), gate));
            silo.AddMqttGrains(o =>
            {
                o.TopicShards = Shards;
                RouteShardingFromEnvironment.Apply(o);
            });
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

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task A_delivery_goes_out_once_the_session_holds_it_and_the_publisher_is_answered_after_the_write(byte qos)
    {
        var (topic, shard) = await SubscribeAsync("order", qos);
        var (marker, markerShard) = await SubscribeAsync("order-marker", qos: 0, otherThan: shard);
        _gate.Hold(topic);

        var publish = shard.Publish(Message(topic, qos));
        await _gate.FirstHeldWrite.WaitAsync(TimeSpan.FromSeconds(10));

        // Had the session pushed the packet when its write started, the push would be queued for this gateway
        // before a QoS 0 message published now, which takes the same queue: so the marker must come first.
        await markerShard.Publish(Message(marker, qos: 0));
        var first = await _gateway.NextDeliveryAsync();
        Assert.True(first.Message.Topic == marker, $"a QoS {first.Qos} packet on {first.Message.Topic} reached the gateway before the session held it");
        Assert.False(publish.IsCompleted, "the publisher was answered before the session's write completed");

        _gate.Open();
        var delivery = await _gateway.NextDeliveryAsync();
        Assert.Equal(qos, delivery.Qos);
        Assert.Equal(topic, delivery.Message.Topic);
        Assert.Equal("payload", Encoding.UTF8.GetString(delivery.Message.Payload.Span));
        Assert.Equal(1, await publish.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private static MqttMessage Message(string topic, byte qos) =>
        new() { Topic = topic, Payload = Encoding.UTF8.GetBytes("payload"), Qos = qos };

    // A persistent session (only those are written) subscribed to a topic of its own, named after the client id;
    // its topic on another shard than a given one, when one is given (a shard handles one publish at a time).
    private async Task<(string Topic, ITopicShardGrain Shard)> SubscribeAsync(string prefix, byte qos, ITopicShardGrain? otherThan = null)
    {
        string clientId;
        do
        {
            clientId = prefix + "-" + Guid.NewGuid().ToString("N")[..10];
        }
        while (otherThan is not null && Orleans.Mqtt.Topics.MqttTopic.ShardOf(clientId, Shards) == otherThan.GetPrimaryKeyLong());

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
