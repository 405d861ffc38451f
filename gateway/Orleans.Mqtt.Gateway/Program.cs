using Orleans.Mqtt.Gateway;

if (UsersCommand.TryRun(args) is { } exitCode)
{
    return exitCode;
}

// A gateway on its own: an Orleans client of the silos. Cluster membership providers come with the cluster; until
// then it joins a localhost cluster on Orleans:GatewayPort.
// Settings files come from beside the program; data paths stay relative to the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
var orleansGatewayPort = builder.Configuration.GetValue("Orleans:GatewayPort", 30000);
var clusterId = builder.Configuration["Orleans:ClusterId"] ?? "orleans-mqtt";
builder.UseOrleansClient(client => client.UseLocalhostClustering(orleansGatewayPort, serviceId: clusterId, clusterId: clusterId));
builder.AddMqttGateway();
var app = builder.Build();
app.MapMqttGateway();
await app.RunAsync();
return 0;
