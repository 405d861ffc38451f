using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Messaging;
using Orleans.Mqtt.Clustering.Consul;
using Orleans.Mqtt.Clustering.Etcd;

namespace Orleans.Mqtt.Clustering.Tests;

/// <summary>Options validation and the extension methods that are the only public way in.</summary>
public sealed class ClusteringOptionsTests
{
    [Fact]
    public void EtcdValidator_AcceptsCommaSeparatedEndpoints()
    {
        var result = new EtcdClusteringOptionsValidator().Validate(null, new EtcdClusteringOptions
        {
            ConnectionString = "http://10.0.0.1:2379, https://etcd-1:2379",
        });

        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Theory]
    [InlineData("", "/orleans-mqtt", "Clustering:Etcd:ConnectionString")]
    [InlineData("127.0.0.1:2379", "/orleans-mqtt", "Clustering:Etcd:ConnectionString")]
    [InlineData("http://127.0.0.1:2379,ftp://x:1", "/orleans-mqtt", "Clustering:Etcd:ConnectionString")]
    [InlineData("http://127.0.0.1:2379", "/", "Clustering:Etcd:KeyPrefix")]
    public void EtcdValidator_NamesTheBadSetting(string connectionString, string keyPrefix, string setting)
    {
        var result = new EtcdClusteringOptionsValidator().Validate(null, new EtcdClusteringOptions
        {
            ConnectionString = connectionString,
            KeyPrefix = keyPrefix,
        });

        Assert.True(result.Failed);
        Assert.Contains(setting, result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void ConsulValidator_NamesTheBadSetting()
    {
        var result = new ConsulClusteringOptionsValidator().Validate(null, new ConsulClusteringOptions
        {
            Address = new Uri("/relative", UriKind.Relative),
            KeyPrefix = " ",
            AclToken = " ",
            RequestTimeout = TimeSpan.Zero,
        });

        Assert.True(result.Failed);
        foreach (var setting in new[] { "Address", "KeyPrefix", "AclToken", "RequestTimeout" })
        {
            Assert.Contains("Clustering:Consul:" + setting, result.FailureMessage, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ConsulOptions_ToString_RedactsTheAclToken()
    {
        var text = new ConsulClusteringOptions { AclToken = "s3cr3t-token" }.ToString();

        Assert.DoesNotContain("s3cr3t-token", text, StringComparison.Ordinal);
        Assert.Contains("AclToken=***", text, StringComparison.Ordinal);
    }

    [Fact]
    public void UseEtcdClustering_OnASilo_RegistersTheEtcdMembershipTable()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.UseOrleans(silo => silo.UseEtcdClustering(o => o.ConnectionString = "http://127.0.0.1:2379"));
        using var host = builder.Build();

        Assert.IsType<EtcdMembershipTable>(host.Services.GetRequiredService<IMembershipTable>());
    }

    [Fact]
    public void UseConsulClustering_OnASilo_RegistersTheConsulMembershipTable()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.UseOrleans(silo => silo.UseConsulClustering(o => o.Address = new Uri("http://127.0.0.1:8500")));
        using var host = builder.Build();

        Assert.IsType<ConsulMembershipTable>(host.Services.GetRequiredService<IMembershipTable>());
    }

    [Fact]
    public void UseClustering_OnAClient_RegistersTheGatewayListProvider()
    {
        var etcd = Host.CreateApplicationBuilder();
        etcd.UseOrleansClient(client => client.UseEtcdClustering(o => o.ConnectionString = "http://127.0.0.1:2379"));
        using var etcdHost = etcd.Build();
        var consul = Host.CreateApplicationBuilder();
        consul.UseOrleansClient(client => client.UseConsulClustering(_ => { }));
        using var consulHost = consul.Build();

        Assert.IsType<EtcdGatewayListProvider>(etcdHost.Services.GetRequiredService<IGatewayListProvider>());
        Assert.IsType<ConsulGatewayListProvider>(consulHost.Services.GetRequiredService<IGatewayListProvider>());
    }

    [Fact]
    public async Task UseEtcdClustering_WithoutAConnectionString_FailsAtStartNamingTheSetting()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.UseOrleans(silo => silo.UseEtcdClustering(_ => { }));
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("Clustering:Etcd:ConnectionString", error.Message, StringComparison.Ordinal);
    }
}
