using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Messaging;
using Orleans.Mqtt.Clustering.Consul;

namespace Orleans.Mqtt.Clustering.Tests;

/// <summary>
/// The membership contract against the Consul named by <c>CONSUL_HTTP_ADDR</c> (as Consul's own tools read it,
/// with or without a scheme; <c>CONSUL_HTTP_TOKEN</c> is sent when set). Without it every test reports as skipped.
/// </summary>
public sealed class ConsulMembershipTableTests : MembershipTableContractTests
{
    private static readonly Uri? Address = ReadAddress();

    protected override string? SkipReason => Address is null ? "CONSUL_HTTP_ADDR not set: no Consul to test against" : null;

    protected override IMembershipTable CreateTable(string clusterId) => NewTable(clusterId);

    protected override IGatewayListProvider CreateGatewayListProvider(string clusterId) =>
        new ConsulGatewayListProvider(NewTable(clusterId), Options.Create(new GatewayOptions()));

    private static ConsulMembershipTable NewTable(string clusterId) => new(
        Options.Create(new ConsulClusteringOptions
        {
            Address = Address!,
            KeyPrefix = "orleans-mqtt-tests",
            AclToken = Environment.GetEnvironmentVariable("CONSUL_HTTP_TOKEN") is { Length: > 0 } token ? token : null,
        }),
        Options.Create(new ClusterOptions { ClusterId = clusterId, ServiceId = "tests" }),
        NullLogger<ConsulMembershipTable>.Instance);

    private static Uri? ReadAddress()
    {
        var value = Environment.GetEnvironmentVariable("CONSUL_HTTP_ADDR");
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        return new Uri(value.Contains("://", StringComparison.Ordinal) ? value : "http://" + value);
    }
}
