using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Hosting;
using Orleans.Mqtt.Silo;

if ((UsersCommand.TryRun(args) ?? ApiKeyCommand.TryRun(args)) is { } exitCode)
{
    return exitCode;
}

// The standalone broker: one silo and one gateway in one process, localhost clustering, data under
// Storage:DataDirectory, no external service.
// Settings files come from beside the program; data paths stay relative to the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
if (OrleansPorts.FindTaken(builder.Configuration) is { } portTaken)
{
    await Console.Error.WriteLineAsync(portTaken);
    return 2;
}

var shutdownTimeout = HostShutdownSetting.Parse(builder.Configuration[HostShutdownSetting.Key], TimeSpan.FromSeconds(20));
builder.Host.ConfigureHostOptions(o => o.ShutdownTimeout = shutdownTimeout);
builder.UseOrleans(silo => silo.AddMqttSilo(builder.Configuration));
builder.AddMqttGateway();
var app = builder.Build();
app.MapMqttGateway();
return await app.RunMqttGatewayAsync();
