using Xunit;
using System.Text;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Ownership;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// Routes sharded by topic on a single silo (the standalone broker): a SUBSCRIBE is written to this silo's replica,
/// where any shard activation runs, so it is not also sent to the shard grain (no activation, no extra call), and it is
/// routable as soon as it is acknowledged.
/// </summary>
public sealed class SingleSiloShardTests : IAsyncLifetime
{
    private const int Shards = 16;
    private InProcessTestCluster _cluster = null!;

    private IClusterClient Client => _cluster.Client;

    public async Task InitializeAsync()
    {
        _cluster = ShardedTestCluster.Builder(1, Shards, copies: null, new(), new InMemorySessionOwnershipStore()).Build();
        await _cluster.DeployAsync();
        await ShardedTestCluster.AllCaughtUpAsync(_cluster, Shards);
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task A_subscribe_on_the_only_silo_does_not_call_the_shard_grain_and_is_routable_when_acknowledged()
    {
        var gateway = new RecordingGateway(Client);
        var topic = "single/" + Guid.NewGuid().ToString("N")[..8];
        var session = Client.GetGrain<IClientSessionGrain>("single-" + Guid.NewGuid().ToString("N")[..8]);
        var presence = gateway.NewConnection();
        await session.Connect(new ConnectRequest(presence, true, 0, null, 5, 0));
        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 0)]);

        Assert.Equal(0, await ShardActivationsAsync());
        var shard = Orleans.Mqtt.Topics.MqttTopic.ShardOf(topic, Shards);
        Assert.Equal(1, await Client.GetGrain<ITopicShardGrain>(shard).Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("m"), Qos = 0 }));
        Assert.Equal(1, await ShardActivationsAsync());
    }

    private async Task<int> ShardActivationsAsync()
    {
        var statistics = await Client.GetGrain<IManagementGrain>(0).GetSimpleGrainStatistics();
        return statistics.Where(s => s.GrainType.Contains(nameof(TopicShardGrain), StringComparison.Ordinal)).Sum(s => s.ActivationCount);
    }
}
