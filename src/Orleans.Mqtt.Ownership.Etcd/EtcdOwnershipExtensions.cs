using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Orleans.Mqtt.Ownership.Etcd;

/// <summary>Registers session ownership in etcd and the gateway lease its records hang on.</summary>
public static class EtcdOwnershipExtensions
{
    private const string MembershipConnectionStringKey = "Clustering:Etcd:ConnectionString";

    /// <summary>
    /// Makes etcd the <see cref="ISessionOwnershipStore"/>: a singleton whose batching loop stops (sending what is
    /// queued) when the service provider is disposed. Also runs the <see cref="EtcdHistoryCompactor"/> as a hosted
    /// service, which keeps etcd's revision history bounded.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the etcd endpoints, key prefix, cluster id and batch limits; validated when the host starts. An empty cluster id is taken from the configuration key <c>Orleans:ClusterId</c>.</param>
    public static IServiceCollection AddEtcdSessionOwnership(this IServiceCollection services, Action<EtcdOwnershipOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        services.AddEtcdOwnershipOptions(configure);
        services.AddMetrics();
        services.TryAddSingleton<EtcdOwnershipMetrics>();
        services.TryAddSingleton<EtcdSessionOwnershipStore>();
        services.TryAddSingleton<ISessionOwnershipStore>(sp => sp.GetRequiredService<EtcdSessionOwnershipStore>());
        if (!services.Any(d => d.ServiceType == typeof(EtcdHistoryCompactor)))
        {
            services.AddSingleton<EtcdHistoryCompactor>();
            services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<EtcdHistoryCompactor>());
        }

        return services;
    }

    /// <summary>
    /// Makes etcd the <see cref="ISessionOwnershipStore"/>, with options bound from the section
    /// <c>Ownership:Etcd</c> of <paramref name="configuration"/>; without <c>Ownership:Etcd:ConnectionString</c>, the
    /// membership etcd of <c>Clustering:Etcd:ConnectionString</c> is used.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configuration">The application's configuration root.</param>
    public static IServiceCollection AddEtcdSessionOwnership(this IServiceCollection services, IConfiguration configuration) =>
        services.AddEtcdSessionOwnership(options => Bind(options, configuration));

    /// <summary>
    /// Registers the <see cref="EtcdGatewayLease"/> singleton and runs it as a hosted service: granted at start, kept
    /// alive, revoked at a graceful stop. Commits put records on its <see cref="EtcdGatewayLease.LeaseId"/>.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the etcd endpoints, lease TTL and request timeout; validated when the host starts.</param>
    public static IServiceCollection AddEtcdGatewayLease(this IServiceCollection services, Action<EtcdOwnershipOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        services.AddEtcdOwnershipOptions(configure);
        services.TryAddSingleton<EtcdGatewayLease>();
        services.TryAddSingleton<IGatewayLease>(sp => sp.GetRequiredService<EtcdGatewayLease>());
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<EtcdGatewayLease>());
        return services;
    }

    /// <summary>
    /// Registers the gateway lease with options bound from the section <c>Ownership:Etcd</c> of
    /// <paramref name="configuration"/> (etcd endpoints defaulting to <c>Clustering:Etcd:ConnectionString</c>).
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configuration">The application's configuration root.</param>
    public static IServiceCollection AddEtcdGatewayLease(this IServiceCollection services, IConfiguration configuration) =>
        services.AddEtcdGatewayLease(options => Bind(options, configuration));

    private static void Bind(EtcdOwnershipOptions options, IConfiguration configuration)
    {
        configuration.GetSection(EtcdOwnershipOptions.SectionName).Bind(options);
        if (string.IsNullOrEmpty(options.ConnectionString))
        {
            // A cluster whose membership is in etcd keeps its ownership records there too unless told otherwise.
            options.ConnectionString = configuration[MembershipConnectionStringKey] ?? string.Empty;
        }

        if (string.IsNullOrEmpty(options.ClusterId))
        {
            options.ClusterId = configuration["Orleans:ClusterId"] ?? string.Empty;
        }
    }

    private static void AddEtcdOwnershipOptions(this IServiceCollection services, Action<EtcdOwnershipOptions> configure)
    {
        services.AddOptions<EtcdOwnershipOptions>()
            .Configure(configure)
            .PostConfigure<IServiceProvider>((options, provider) =>
            {
                // The gateway and silo hosts name their cluster under Orleans:ClusterId; the records follow it by default.
                if (string.IsNullOrEmpty(options.ClusterId))
                {
                    options.ClusterId = provider.GetService<IConfiguration>()?["Orleans:ClusterId"] ?? string.Empty;
                }
            })
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<EtcdOwnershipOptions>, EtcdOwnershipOptionsValidator>());
    }
}
