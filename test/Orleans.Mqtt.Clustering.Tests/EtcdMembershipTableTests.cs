using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Messaging;
using Orleans.Mqtt.Clustering.Etcd;

namespace Orleans.Mqtt.Clustering.Tests;

/// <summary>The membership contract against a real etcd started for this class.</summary>
public sealed class EtcdMembershipTableTests(EtcdServer etcd) : MembershipTableContractTests, IClassFixture<EtcdServer>
{
    protected override string? SkipReason => null;

    protected override IMembershipTable CreateTable(string clusterId) => NewTable(clusterId);

    protected override IGatewayListProvider CreateGatewayListProvider(string clusterId) =>
        new EtcdGatewayListProvider(NewTable(clusterId), Options.Create(new GatewayOptions()));

    private EtcdMembershipTable NewTable(string clusterId) => new(
        Options.Create(new EtcdClusteringOptions { ConnectionString = etcd.ClientUrl, KeyPrefix = "/orleans-mqtt-tests" }),
        Options.Create(new ClusterOptions { ClusterId = clusterId, ServiceId = "tests" }),
        NullLogger<EtcdMembershipTable>.Instance);
}
