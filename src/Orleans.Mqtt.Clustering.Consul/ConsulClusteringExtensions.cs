using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Orleans.Messaging;

namespace Orleans.Mqtt.Clustering.Consul;

/// <summary>Makes Consul the membership store of a silo, or the gateway list of a client.</summary>
public static class ConsulClusteringExtensions
{
    /// <summary>Keeps this silo's cluster membership table in Consul.</summary>
    /// <param name="builder">The silo builder.</param>
    /// <param name="configure">Sets the Consul address, key prefix and ACL token; validated when the host starts.</param>
    public static ISiloBuilder UseConsulClustering(this ISiloBuilder builder, Action<ConsulClusteringOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.AddConsulMembershipTable(configure);
        builder.Services.AddSingleton<IMembershipTable>(sp => sp.GetRequiredService<ConsulMembershipTable>());
        return builder;
    }

    /// <summary>Finds the cluster's gateways in the Consul membership table the silos keep.</summary>
    /// <param name="builder">The client builder.</param>
    /// <param name="configure">Sets the Consul address, key prefix and ACL token; validated when the host starts.</param>
    public static IClientBuilder UseConsulClustering(this IClientBuilder builder, Action<ConsulClusteringOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.AddConsulMembershipTable(configure);
        builder.Services.AddSingleton<IGatewayListProvider, ConsulGatewayListProvider>();
        return builder;
    }

    private static void AddConsulMembershipTable(this IServiceCollection services, Action<ConsulClusteringOptions> configure)
    {
        services.AddOptions<ConsulClusteringOptions>().Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ConsulClusteringOptions>, ConsulClusteringOptionsValidator>());
        services.TryAddSingleton<ConsulMembershipTable>();
    }
}
