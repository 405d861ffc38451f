using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Orleans.Messaging;

namespace Orleans.Mqtt.Clustering.Etcd;

/// <summary>Makes etcd the membership store of a silo, or the gateway list of a client.</summary>
public static class EtcdClusteringExtensions
{
    /// <summary>Keeps this silo's cluster membership table in etcd.</summary>
    /// <param name="builder">The silo builder.</param>
    /// <param name="configure">Sets the etcd endpoints and key prefix; validated when the host starts.</param>
    public static ISiloBuilder UseEtcdClustering(this ISiloBuilder builder, Action<EtcdClusteringOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.AddEtcdMembershipTable(configure);
        builder.Services.AddSingleton<IMembershipTable>(sp => sp.GetRequiredService<EtcdMembershipTable>());
        return builder;
    }

    /// <summary>Finds the cluster's gateways in the etcd membership table the silos keep.</summary>
    /// <param name="builder">The client builder.</param>
    /// <param name="configure">Sets the etcd endpoints and key prefix; validated when the host starts.</param>
    public static IClientBuilder UseEtcdClustering(this IClientBuilder builder, Action<EtcdClusteringOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.AddEtcdMembershipTable(configure);
        builder.Services.AddSingleton<IGatewayListProvider, EtcdGatewayListProvider>();
        return builder;
    }

    private static void AddEtcdMembershipTable(this IServiceCollection services, Action<EtcdClusteringOptions> configure)
    {
        services.AddOptions<EtcdClusteringOptions>().Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<EtcdClusteringOptions>, EtcdClusteringOptionsValidator>());
        services.TryAddSingleton<EtcdMembershipTable>();
    }
}
