using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Silo.Storage;

namespace Orleans.Mqtt.Silo;

/// <summary>Composes a silo of the broker: clustering, the MQTT grains and their FASTER-backed storage.</summary>
public static class SiloHostingExtensions
{
    /// <summary>
    /// Configures <paramref name="silo"/> from configuration: <c>Orleans:ClusterId</c>, <c>Orleans:SiloPort</c>,
    /// <c>Orleans:GatewayPort</c> (localhost clustering), <c>Storage:DataDirectory</c> for session state and the route
    /// replica, and the <c>Mqtt</c> section for broker options.
    /// </summary>
    public static ISiloBuilder AddMqttSilo(this ISiloBuilder silo, IConfiguration configuration)
    {
        var clusterId = configuration["Orleans:ClusterId"] ?? "orleans-mqtt";
        var siloPort = configuration.GetValue("Orleans:SiloPort", EndpointOptions.DEFAULT_SILO_PORT);
        var gatewayPort = configuration.GetValue("Orleans:GatewayPort", EndpointOptions.DEFAULT_GATEWAY_PORT);
        var dataDirectory = configuration["Storage:DataDirectory"] ?? "./data";

        silo.UseLocalhostClustering(siloPort, gatewayPort, primarySiloEndpoint: null, serviceId: clusterId, clusterId: clusterId);
        silo.Configure<EndpointOptions>(o => o.AdvertisedIPAddress = IPAddress.Loopback);
        silo.AddMqttGrains();
        silo.AddFasterGrainStorage(MqttGrainStorage.Name, o =>
        {
            configuration.GetSection("Storage").Bind(o);
            o.DataDirectory = dataDirectory;
        });
        silo.Services.AddSingleton(sp => FasterReplicaStore.Create(sp, Path.Combine(dataDirectory, "replica")));
        silo.Services.AddSingleton<IReplicaStore>(sp => sp.GetRequiredService<FasterReplicaStore>());
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<FasterReplicaStore>());
        return silo;
    }
}
