using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Orleans.Mqtt.Hosting;
using Orleans.Mqtt.Silo;

// A silo on its own. Cluster membership providers come with the cluster; until then it runs localhost clustering.
// Settings files come from beside the program; data paths stay relative to the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
if (OrleansPorts.FindTaken(builder.Configuration) is { } portTaken)
{
    await Console.Error.WriteLineAsync(portTaken);
    return 2;
}

var shutdownTimeout = HostShutdownSetting.Parse(builder.Configuration[HostShutdownSetting.Key], TimeSpan.FromSeconds(30));
builder.Host.ConfigureHostOptions(o => o.ShutdownTimeout = shutdownTimeout);
builder.UseOrleans(silo => silo.AddMqttSilo(builder.Configuration));
builder.AddMqttSiloHttp();
var app = builder.Build();
app.MapMqttSiloHttp();
return await app.RunMqttSiloAsync();
