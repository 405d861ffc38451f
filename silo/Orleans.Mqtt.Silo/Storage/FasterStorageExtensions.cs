using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Providers;
using Orleans.Runtime.Hosting;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>Registers the FASTER KV grain storage provider on a silo.</summary>
public static class FasterStorageExtensions
{
    /// <summary>
    /// Adds a FASTER KV grain storage provider named <paramref name="name"/>, for grains that use
    /// <c>[PersistentState("…", "<paramref name="name"/>")]</c>.
    /// </summary>
    /// <param name="builder">The silo builder.</param>
    /// <param name="name">The provider name; also the name of its directory under <c>DataDirectory/grain-state</c>.</param>
    /// <param name="configure">Configures the provider's options.</param>
    /// <returns>The silo builder.</returns>
    public static ISiloBuilder AddFasterGrainStorage(this ISiloBuilder builder, string name, Action<FasterStorageOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);

        var services = builder.Services;
        var options = services.AddOptions<FasterStorageOptions>(name);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.AddTransient<IConfigurationValidator>(sp => new FasterStorageOptionsValidator(
            sp.GetRequiredService<IOptionsMonitor<FasterStorageOptions>>().Get(name),
            name));
        services.AddGrainStorage(name, FasterGrainStorage.Create);
        return builder;
    }

    /// <summary>Adds a FASTER KV grain storage provider as the silo's default grain storage.</summary>
    /// <param name="builder">The silo builder.</param>
    /// <param name="configure">Configures the provider's options.</param>
    /// <returns>The silo builder.</returns>
    public static ISiloBuilder AddFasterGrainStorageAsDefault(this ISiloBuilder builder, Action<FasterStorageOptions>? configure = null)
        => builder.AddFasterGrainStorage(ProviderConstants.DEFAULT_STORAGE_PROVIDER_NAME, configure);
}
