using Microsoft.Extensions.Hosting;
using Orleans.Mqtt.Silo;

// A silo on its own. Cluster membership providers come with the cluster; until then it runs localhost clustering.
// Settings files come from beside the program; data paths stay relative to the working directory.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.UseOrleans(silo => silo.AddMqttSilo(builder.Configuration));
await builder.Build().RunAsync();
