using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Gateway;

/// <summary>The cluster as the admin endpoints reach it: the active silos, and the grains that answer on each.</summary>
internal sealed class AdminCluster(MqttGateway gateway)
{
    /// <summary>The gateway this process runs.</summary>
    public MqttGateway Gateway => gateway;

    /// <summary>The grain factory of the gateway's cluster client.</summary>
    public IGrainFactory Grains => gateway.GrainFactory;

    /// <summary>The silos the membership lists as active.</summary>
    public async Task<SiloAddress[]> ActiveSilosAsync()
    {
        var hosts = await Grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        return [.. hosts.Keys];
    }

    /// <summary>The admin query grain pinned to <paramref name="silo"/>.</summary>
    public IAdminQueryGrain Query(SiloAddress silo) => Grains.GetGrain<IAdminQueryGrain>(silo.ToParsableString());

    /// <summary>The shard <paramref name="topic"/> is published through, as a client's publish would be.</summary>
    public ITopicShardGrain ShardOf(string topic) => gateway.Shard(Topics.MqttTopic.ShardOf(topic, gateway.TopicShards));
}
