using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Hosting;

namespace Orleans.Mqtt.Silo;

/// <summary>
/// A silo process's HTTP endpoint, for probes and scraping: <c>/health/live</c>, <c>/health/ready</c> and
/// <c>/metrics</c> (the broker's instruments recorded on this silo, such as sessions in memory, ownership commits
/// and dropped messages, and the runtime's), on <c>Http:Port</c> at <c>Mqtt:BindAddress</c>.
/// </summary>
public static class SiloHttpExtensions
{
    /// <summary>Registers the silo's metrics and its HTTP listener (<c>Http:Port</c>, default 8080, 0 turns it off).</summary>
    public static WebApplicationBuilder AddMqttSiloHttp(this WebApplicationBuilder builder)
    {
        var (address, port) = Endpoint(builder.Configuration);
        BrokerMetrics.Add(builder.Services, builder.Configuration);
        BrokerTracing.Add(builder.Services, builder.Configuration, "orleans-mqtt-silo");
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, HeapTrimmer>());
        if (port > 0)
        {
            builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(address, port));
        }
        else
        {
            // Kestrel without an endpoint of its own would listen on its default one (localhost:5000): no server at all.
            builder.Services.AddSingleton<IServer, NoServer>();
        }

        return builder;
    }

    /// <summary>
    /// Maps the endpoints. Ready means the silo has joined its cluster, its route replica is complete (it matches
    /// every subscription) and it is not stopping.
    /// </summary>
    public static WebApplication MapMqttSiloHttp(this WebApplication app)
    {
        var routes = app.Services.GetRequiredService<RouteTable>();
        var started = false;
        app.Lifetime.ApplicationStarted.Register(() => Volatile.Write(ref started, true));
        app.Lifetime.ApplicationStopping.Register(() => Volatile.Write(ref started, false));
        app.MapGet("/health/live", () => Results.Text("live"));
        app.MapGet("/health/ready", () => Volatile.Read(ref started) && routes.IsReady
            ? Results.Text("ready")
            : Results.Text("not ready", statusCode: StatusCodes.Status503ServiceUnavailable));
        app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }

    /// <summary>
    /// Runs the silo until it stops; returns the exit code. A taken <c>Http:Port</c> ends the start with one line
    /// naming the setting and exit code 2.
    /// </summary>
    public static async Task<int> RunMqttSiloAsync(this WebApplication app)
    {
        var port = Endpoint(app.Configuration).Port;
        try
        {
            await app.RunAsync().ConfigureAwait(false);
            return 0;
        }
        catch (IOException ex) when (ex.InnerException is AddressInUseException)
        {
            await Console.Error.WriteLineAsync($"Startup failed: {ex.Message} Another process listens on that port; change {ListenerSettings.HttpPort}={port}.").ConfigureAwait(false);
            return 2;
        }
    }

    private static (IPAddress Address, int Port) Endpoint(IConfiguration configuration)
    {
        var port = configuration.GetValue(ListenerSettings.HttpPort, 8080);
        var bindAddress = configuration[ListenerSettings.BindAddress] ?? "127.0.0.1";
        if ((ListenerSettings.PortError(ListenerSettings.HttpPort, port) ?? ListenerSettings.BindAddressError(bindAddress)) is { } error)
        {
            throw new InvalidOperationException(error);
        }

        return (IPAddress.Parse(bindAddress), port);
    }
}
