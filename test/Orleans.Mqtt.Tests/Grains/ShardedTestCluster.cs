using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Ownership;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// In-process clusters with routes sharded by topic (<c>Mqtt:Routes:Sharding</c> Topic) for the tests of shards and
/// their holders: each silo keeps its grain state in its own storage (a killed silo's sessions survive only in the copies
/// on the others), the cluster shares one ownership store, and the periodic repair and gateway timeouts stay out of the
/// way of what a test counts.
/// </summary>
internal static class ShardedTestCluster
{
    /// <summary>
    /// A builder of <paramref name="silos"/> silos with <paramref name="shards"/> topic shards, <paramref name="copies"/>
    /// route holders per shard (null: the default), faster membership when <paramref name="membership"/> is given, and
    /// <paramref name="callFilter"/> on every silo's incoming grain calls when given.
    /// </summary>
    public static InProcessTestClusterBuilder Builder(
        short silos,
        int shards,
        int? copies,
        ConcurrentDictionary<string, SiloLocalGrainStorage> storages,
        ISessionOwnershipStore ownership,
        Action<ClusterMembershipOptions>? membership = null,
        IncomingGrainCallFilterDelegate? callFilter = null)
    {
        var builder = new InProcessTestClusterBuilder(silos);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddGrainStorage(MqttGrainStorage.Name, (services, _) =>
                storages.GetOrAdd(services.GetRequiredService<ILocalSiloDetails>().Name, _ => new SiloLocalGrainStorage(services.GetRequiredService<DeepCopier>())));
            silo.Services.AddSingleton<ISessionOwnershipStore>(ownership);
            if (membership is not null)
            {
                silo.Services.Configure(membership);
            }

            if (callFilter is not null)
            {
                silo.AddIncomingGrainCallFilter(callFilter);
            }

            silo.AddMqttGrains(o =>
            {
                o.TopicShards = shards;
                o.Routes.Sharding = RouteSharding.Topic;
                if (copies is { } n)
                {
                    o.Routes.Copies = n;
                }

                o.GatewayTimeout = TimeSpan.FromHours(1);
                o.ReplicaRepairInterval = TimeSpan.FromHours(1);
                o.ReplicaTombstoneLifetime = TimeSpan.FromHours(4);
            });
        });
        return builder;
    }

    /// <summary>
    /// Waits, on every silo, until it sees every silo of <paramref name="cluster"/> active and its replica has taken that
    /// view in: it holds every route of its shards and every entry it is an entry holder of.
    /// </summary>
    public static async Task AllCaughtUpAsync(InProcessTestCluster cluster, int shards)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var expected = cluster.Silos.Select(s => s.SiloAddress).ToHashSet();
        foreach (var silo in cluster.Silos)
        {
            var services = cluster.GetSiloServiceProvider(silo.SiloAddress);
            var holders = services.GetRequiredService<RouteHolders>();
            var membership = services.GetRequiredService<IClusterMembershipService>();
            await services.GetRequiredService<RouteTable>().Ready.WaitAsync(timeout.Token);
            while (!membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress).ToHashSet().SetEquals(expected))
            {
                await membership.Refresh(new MembershipVersion(membership.CurrentSnapshot.Version.Value + 1)).AsTask().WaitAsync(timeout.Token);
            }

            for (var shard = 0; shard < shards; shard++)
            {
                await holders.WhenServable(shard, membership.CurrentSnapshot.Version).WaitAsync(timeout.Token);
            }

            await holders.WhenEntriesServable(membership.CurrentSnapshot.Version).WaitAsync(timeout.Token);
        }
    }
}
