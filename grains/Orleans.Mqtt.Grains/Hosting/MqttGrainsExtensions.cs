using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>Registers the broker's grains and their silo-local services.</summary>
public static class MqttGrainsExtensions
{
    /// <summary>
    /// Adds the MQTT grains: the route replica of this silo, the replica placement, metrics and the broker options
    /// (bound from the <c>Mqtt</c> configuration section when <paramref name="configure"/> is null). The grain storage
    /// provider named <see cref="MqttGrainStorage.Name"/> and an <see cref="IReplicaStore"/> are the host's choice
    /// (an in-memory replica store is used when none is registered).
    /// </summary>
    public static ISiloBuilder AddMqttGrains(this ISiloBuilder builder, Action<MqttBrokerOptions>? configure = null)
    {
        var services = builder.Services;
        var options = services.AddOptions<MqttBrokerOptions>();
        if (configure is null)
        {
            options.BindConfiguration(MqttBrokerOptions.SectionName);
        }
        else
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MqttBrokerOptions>, MqttBrokerOptionsValidator>());
        services.AddOptions<GrainCollectionOptions>().Configure<IOptions<MqttBrokerOptions>>((collection, broker) =>
        {
            // Idle sessions are collected within half a timeout of it: the collector looks once per quantum.
            var idle = broker.Value.SessionIdleTimeout;
            collection.ClassSpecificCollectionAge[typeof(ClientSessionGrain).FullName!] = idle;
            if (collection.CollectionQuantum > idle / 2)
            {
                collection.CollectionQuantum = idle / 2;
            }
        });
        services.AddMetrics();
        services.TryAddSingleton<MqttMetrics>();
        services.TryAddSingleton<IReplicaStore, InMemoryReplicaStore>();
        services.AddSingleton<RouteTable>();
        services.AddSingleton<RouteHolders>();
        services.AddSingleton(sp => new GrainRefs<IClientSessionGrain>(sp.GetRequiredService<IGrainFactory>()));
        services.AddSingleton(sp => new GrainRefs<IRouteReplicaGrain>(sp.GetRequiredService<IGrainFactory>()));
        services.AddSingleton(sp => new GrainRefs<ISessionCopyGrain>(sp.GetRequiredService<IGrainFactory>()));
        services.AddSingleton(sp => new GrainRefs<ISessionCopyGrainV2>(sp.GetRequiredService<IGrainFactory>()));
        services.AddSingleton<SiloManifests>();
        services.AddSingleton<SessionCopyStore>();
        services.AddSingleton<SessionReplicator>();
        services.AddSingleton<SessionRereplicator>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<SessionRereplicator>());
        services.AddSingleton<ReplicaBroadcaster>();
        services.AddSingleton<ReplicaWriter>();
        services.AddSingleton<EntryLocator>();
        services.AddSingleton<ReplicaLoader>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<ReplicaLoader>());
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, SiloNameGuard>();
        services.AddSingleton<StaleSessionCopies>();
        services.AddSingleton<ReplicaSync>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<ReplicaSync>());
        services.TryAddSingleton<ISessionOwnershipStore, InMemorySessionOwnershipStore>();
        services.AddSingleton<DeadGateways>();
        services.AddSingleton<HandoverTargets>();
        services.AddSingleton<GatewayOutbox>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<GatewayOutbox>());
        services.AddSingleton<PushRetryOnSiloLoss>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<PushRetryOnSiloLoss>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<SessionSweeper>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<SessionSweeper>());
        builder.AddPlacementDirector<SiloPinnedPlacement, SiloPinnedPlacementDirector>();
        builder.AddPlacementDirector<SessionHomePlacement, SessionHomePlacementDirector>();
        builder.AddPlacementDirector<TopicShardPlacement, TopicShardPlacementDirector>();
        return builder;
    }
}
