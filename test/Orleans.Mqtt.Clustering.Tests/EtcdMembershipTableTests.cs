using dotnet_etcd;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Messaging;
using Orleans.Mqtt.Clustering.Etcd;
using Orleans.Mqtt.Testing;

namespace Orleans.Mqtt.Clustering.Tests;

/// <summary>The membership contract against a real etcd started for this class.</summary>
public sealed class EtcdMembershipTableTests(EtcdServer etcd) : MembershipTableContractTests, IClassFixture<EtcdServer>
{
    protected override string? SkipReason => null;

    protected override IMembershipTable CreateTable(string clusterId) => NewTable(clusterId);

    [Fact]
    public async Task Reading_the_table_leaves_out_the_session_ownership_records_of_the_cluster()
    {
        // The ownership records live beside the members (…/{clusterId}/owners/…), one per session. Six of 1 MiB stand
        // in for 50,000 small ones: together they pass gRPC's 4 MiB limit on an answer.
        using var client = new EtcdClient(etcd.ClientUrl, configureChannelOptions: o => o.Credentials = ChannelCredentials.Insecure);
        var value = new string('x', 1 << 20);
        for (var i = 0; i < 6; i++)
        {
            await client.PutAsync($"/orleans-mqtt-tests/{ClusterId}/owners/client-{i}", value);
        }

        using var table = NewTable(ClusterId);
        await table.InitializeMembershipTableAsync(tryInitTableVersion: true, CancellationToken.None);
        var data = await table.ReadAllAsync(CancellationToken.None);

        Assert.Empty(data.Members);
        Assert.Equal(0, data.Version.Version);
        var provider = CreateGatewayListProvider(ClusterId);
        await provider.InitializeGatewayListProviderAsync(CancellationToken.None);
        Assert.Empty(await provider.GetGatewaysAsync(CancellationToken.None));
    }

    protected override IGatewayListProvider CreateGatewayListProvider(string clusterId) =>
        new EtcdGatewayListProvider(NewTable(clusterId), Options.Create(new GatewayOptions()));

    private EtcdMembershipTable NewTable(string clusterId) => new(
        Options.Create(new EtcdClusteringOptions { ConnectionString = etcd.ClientUrl, KeyPrefix = "/orleans-mqtt-tests" }),
        Options.Create(new ClusterOptions { ClusterId = clusterId, ServiceId = "tests" }),
        NullLogger<EtcdMembershipTable>.Instance);
}
