using Orleans.Configuration;
using Orleans.Mqtt.Clustering;
using Orleans.Mqtt.Clustering.Consul;
using Orleans.Mqtt.Clustering.Etcd;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Hosting;
using Orleans.Mqtt.Ownership.Etcd;

if ((UsersCommand.TryRun(args) ?? ApiKeyCommand.TryRun(args)) is { } exitCode)
{
    return exitCode;
}

// A gateway on its own: an Orleans client of the silos, which it finds through Clustering:Provider
// (Localhost on Orleans:GatewayPort, Etcd or Consul).
// Settings files come from beside the program; data paths stay relative to the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
var shutdownTimeout = HostShutdownSetting.Parse(builder.Configuration[HostShutdownSetting.Key], TimeSpan.FromSeconds(30));
builder.Host.ConfigureHostOptions(o => o.ShutdownTimeout = shutdownTimeout);
var orleansGatewayPort = builder.Configuration.GetValue("Orleans:GatewayPort", 30000);
var clusterId = builder.Configuration["Orleans:ClusterId"] ?? "orleans-mqtt";
builder.UseOrleansClient(client =>
{
    switch (ClusteringProviderSetting.Of(builder.Configuration))
    {
        case ClusteringProvider.Localhost:
            client.UseLocalhostClustering(orleansGatewayPort, serviceId: clusterId, clusterId: clusterId);
            return;
        case ClusteringProvider.Etcd:
            client.UseEtcdClustering(o => builder.Configuration.GetSection(EtcdClusteringOptions.SectionName).Bind(o));
            break;
        case ClusteringProvider.Consul:
            client.UseConsulClustering(o => builder.Configuration.GetSection(ConsulClusteringOptions.SectionName).Bind(o));
            break;
    }

    client.Configure<ClusterOptions>(o =>
    {
        o.ClusterId = clusterId;
        o.ServiceId = clusterId;
    });
});
// The lease the silos put this gateway's ownership records on: registered first, so it is granted before the
// gateway's own services start.
if (OwnershipSetting.UsesEtcd(builder.Configuration))
{
    builder.Services.AddEtcdGatewayLease(builder.Configuration);
}

builder.AddMqttGateway();
var app = builder.Build();
app.MapMqttGateway();
return await app.RunMqttGatewayAsync();
