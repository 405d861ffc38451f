using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Mqtt.Clustering;
using Orleans.Mqtt.Clustering.Consul;
using Orleans.Mqtt.Clustering.Etcd;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Hosting;
using Orleans.Mqtt.Ownership.Etcd;
using Orleans.Mqtt.Silo.Storage;

namespace Orleans.Mqtt.Silo;

/// <summary>Composes a silo of the broker: clustering, the MQTT grains and their FASTER-backed storage.</summary>
public static class SiloHostingExtensions
{
    /// <summary>
    /// Configures <paramref name="silo"/> from configuration: <c>Orleans:ClusterId</c>, <c>Orleans:SiloPort</c>,
    /// <c>Orleans:GatewayPort</c>, <c>Clustering:Provider</c> (<c>Localhost</c>, <c>Etcd</c> with
    /// <c>Clustering:Etcd:ConnectionString</c>, or <c>Consul</c> with <c>Clustering:Consul:Address</c>),
    /// <c>Orleans:AdvertisedIPAddress</c>, <c>Storage:DataDirectory</c> for session state, the route replica and the
    /// silo's name (the directory's identity, kept in it), the
    /// <c>Membership</c> section for Orleans' failure detection (<c>ProbeTimeout</c>, <c>NumMissedProbesLimit</c>,
    /// <c>NumVotesForDeathDeclaration</c>…), <c>Ownership:Etcd</c> for the session ownership records (etcd clustering
    /// uses its own etcd by default; Consul clustering requires <c>Ownership:Etcd:ConnectionString</c>) and the
    /// <c>Mqtt</c> section for broker options.
    /// </summary>
    public static ISiloBuilder AddMqttSilo(this ISiloBuilder silo, IConfiguration configuration)
    {
        var clusterId = configuration["Orleans:ClusterId"] ?? "orleans-mqtt";
        var siloPort = configuration.GetValue("Orleans:SiloPort", EndpointOptions.DEFAULT_SILO_PORT);
        var gatewayPort = configuration.GetValue("Orleans:GatewayPort", EndpointOptions.DEFAULT_GATEWAY_PORT);
        var dataDirectory = configuration["Storage:DataDirectory"] ?? "./data";

        switch (ClusteringProviderSetting.Of(configuration))
        {
            case ClusteringProvider.Localhost:
                silo.UseLocalhostClustering(siloPort, gatewayPort, primarySiloEndpoint: null, serviceId: clusterId, clusterId: clusterId);
                silo.Configure<EndpointOptions>(o => o.AdvertisedIPAddress = IPAddress.Loopback);
                break;
            case ClusteringProvider.Etcd:
                silo.UseEtcdClustering(o => configuration.GetSection(EtcdClusteringOptions.SectionName).Bind(o));
                ConfigureNetwork(silo, configuration, clusterId, siloPort, gatewayPort);
                break;
            case ClusteringProvider.Consul:
                silo.UseConsulClustering(o => configuration.GetSection(ConsulClusteringOptions.SectionName).Bind(o));
                ConfigureNetwork(silo, configuration, clusterId, siloPort, gatewayPort);
                break;
        }

        // Failure detection from the Membership section, over defaults that declare a killed silo dead within a few
        // seconds (Orleans' own take tens of seconds, during which every call into that silo waits).
        silo.Services.AddOptions<ClusterMembershipOptions>()
            .Configure(FastFailureDetection.Apply)
            .Bind(configuration.GetSection("Membership"));

        // Registered before the grains, whose in-memory store only fills the place when no other is set.
        if (OwnershipSetting.UsesEtcd(configuration))
        {
            silo.Services.AddEtcdSessionOwnership(configuration);
        }

        // The name of a silo is the identity of its data directory, kept there across restarts: sessions name their
        // home by it, since a restarted silo has a new address.
        var configuredName = configuration["Orleans:Name"] is { Length: > 0 } n ? n : null;
        silo.Configure<SiloOptions>(o => o.SiloName = SiloNameFile.ReadOrCreate(dataDirectory, configuredName));

        // Tracing: Orleans carries the current span across grain calls (a traced CONNECT's or SUBSCRIBE's calls to
        // sessions and replicas). Added only when tracing is on, so calls pay nothing for it otherwise.
        if (BrokerTracing.IsEnabled(configuration))
        {
            silo.AddActivityPropagation();
        }

        silo.AddMqttGrains();
        silo.AddFasterGrainStorage(MqttGrainStorage.Name, o =>
        {
            configuration.GetSection("Storage").Bind(o);
            o.DataDirectory = dataDirectory;
        });
        // The route replica's records share the session storage's store (one commit for a session and its routes).
        silo.Services.AddSingleton(sp => FasterReplicaStore.Create(sp, MqttGrainStorage.Name, Path.Combine(dataDirectory, "replica")));
        silo.Services.AddSingleton<IReplicaStore>(sp => sp.GetRequiredService<FasterReplicaStore>());
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<FasterReplicaStore>());
        return silo;
    }

    private static void ConfigureNetwork(ISiloBuilder silo, IConfiguration configuration, string clusterId, int siloPort, int gatewayPort)
    {
        var advertised = configuration["Orleans:AdvertisedIPAddress"] is { Length: > 0 } text
            ? IPAddress.TryParse(text, out var ip) ? ip : throw new InvalidOperationException($"Orleans:AdvertisedIPAddress '{text}' is not an IP address.")
            : IPAddress.Loopback;
        silo.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = clusterId;
            o.ServiceId = clusterId;
        });
        silo.ConfigureEndpoints(advertised, siloPort, gatewayPort, listenOnAnyHostAddress: !IPAddress.IsLoopback(advertised));
    }
}
