using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Hosting;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>Adds an MQTT gateway (listeners, protocol handling, health and metrics endpoints) to a web application.</summary>
public static class GatewayHostingExtensions
{
    /// <summary>
    /// Registers the gateway's services and Kestrel listeners from the <c>Mqtt</c> and <c>Http</c> configuration
    /// sections. The application must also have an Orleans client or a co-hosted silo.
    /// </summary>
    public static WebApplicationBuilder AddMqttGateway(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<MqttGatewayOptions>().BindConfiguration(MqttGatewayOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MqttGatewayOptions>, MqttGatewayOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MqttGatewayOptions>, DeviceIdentityOptionsValidator>());
        services.AddOptions<HttpEndpointOptions>().BindConfiguration(HttpEndpointOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HttpEndpointOptions>, HttpEndpointOptionsValidator>());
        services.AddOptions<MqttBrokerOptions>().BindConfiguration(MqttBrokerOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MqttBrokerOptions>, MqttBrokerOptionsValidator>());
        BrokerMetrics.Add(services, builder.Configuration);
        BrokerTracing.Add(services, builder.Configuration, "orleans-mqtt-gateway");
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, HeapTrimmer>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<SiloLossWatch>();
        services.AddSingleton<IClusterConnectionStatusObserver>(sp => sp.GetRequiredService<SiloLossWatch>());
        services.AddSingleton<MqttGateway>();
        services.AddHostedService(sp => sp.GetRequiredService<MqttGateway>());
        services.AddSingleton<MqttConnectionHandler>();

        // MQTT over TCP on the gateway's own transport (Mqtt:Tcp:Transport Sockets); stopped before the gateway, so the
        // gateway's drain runs while the listener waits for its connections to end.
        services.AddSingleton<MqttSocketListener>();
        services.AddHostedService(sp => sp.GetRequiredService<MqttSocketListener>());
        services.AddSingleton<MqttWebSocketTransport>();
        AdminApi.AddServices(services);

        // Read here, not through the options: the logger factory is built before the options are validated.
        if (!builder.Configuration.GetValue<bool>($"{MqttGatewayOptions.SectionName}:{nameof(MqttGatewayOptions.LogScopes)}"))
        {
            services.Configure<LoggerFilterOptions>(o => o.CaptureScopes = false);
        }

        builder.WebHost.ConfigureKestrel((context, kestrel) =>
        {
            var o = kestrel.ApplicationServices.GetRequiredService<IOptions<MqttGatewayOptions>>().Value;
            var http = kestrel.ApplicationServices.GetRequiredService<IOptions<HttpEndpointOptions>>().Value;
            var address = IPAddress.Parse(o.BindAddress);
            var gateway = kestrel.ApplicationServices.GetRequiredService<MqttGateway>();

            // A TCP connection that sends nothing is held this long before its first request, on the WebSocket port
            // too (Kestrel's default is 130 s): no longer than a silent connection on the MQTT port is held.
            kestrel.Limits.KeepAliveTimeout = o.ConnectTimeout;
            if (kestrel.Limits.RequestHeadersTimeout > o.ConnectTimeout)
            {
                kestrel.Limits.RequestHeadersTimeout = o.ConnectTimeout;
            }

            if (o.Tcp.Port > 0 && o.Tcp.Transport == TcpTransport.Kestrel)
            {
                kestrel.Listen(address, o.Tcp.Port, l => l.Use(gateway.Sockets.Middleware).UseConnectionHandler<MqttConnectionHandler>());
            }

            if (o.Tls.Enabled)
            {
                var certificate = X509Certificate2.CreateFromPemFile(o.Tls.CertificateFile!, o.Tls.KeyFile);
                var clientCertificates = o.Tls.ClientCertificatesEnabled ? ClientCertificates(kestrel.ApplicationServices, o.Tls) : null;
                kestrel.Listen(address, o.Tls.Port, l =>
                {
                    // Admitted before the handshake, which costs the most of a connection's start.
                    l.Use(gateway.Sockets.Middleware);
                    l.UseHttps(new TlsHandshakeCallbackOptions
                    {
                        OnConnection = context =>
                        {
                            var ssl = new SslServerAuthenticationOptions { ServerCertificate = certificate };
                            clientCertificates?.Configure(ssl, context.Connection.RemoteEndPoint);
                            return ValueTask.FromResult(ssl);
                        },
                    });
                    l.UseConnectionHandler<MqttConnectionHandler>();
                });
            }

            if (o.WebSocket.Port > 0)
            {
                // Every connection to the port counts, whatever its request (the health and metrics endpoints too when
                // Http:Port is the same port).
                kestrel.Listen(address, o.WebSocket.Port, l => l.Use(gateway.Sockets.Middleware));
            }

            if (http.Port > 0 && http.Port != o.WebSocket.Port)
            {
                kestrel.Listen(address, http.Port);
            }

            if (!(o.Tcp.Port > 0 && o.Tcp.Transport == TcpTransport.Kestrel) && !o.Tls.Enabled && o.WebSocket.Port == 0 && http.Port == 0)
            {
                // Every listener is off or on the socket transport: Kestrel given no endpoint would bind
                // http://localhost:5000, a port nobody configured. A port the system picks on loopback instead.
                kestrel.Listen(IPAddress.Loopback, 0);
            }
        });
        return builder;
    }

    private static ClientCertificateValidator ClientCertificates(IServiceProvider services, TlsListenerOptions tls) => new(
        tls,
        services.GetRequiredService<MqttMetrics>(),
        services.GetRequiredService<TimeProvider>(),
        services.GetRequiredService<ILoggerFactory>().CreateLogger<ClientCertificateValidator>());

    /// <summary>
    /// Runs the application until it stops; returns the process's exit code. A listener whose port another process
    /// holds, or an open-file limit that leaves no room for connections, ends the start with one line naming the
    /// setting and exit code 2, instead of an unhandled exception.
    /// </summary>
    public static async Task<int> RunMqttGatewayAsync(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<MqttGatewayOptions>>().Value;
        var http = app.Services.GetRequiredService<IOptions<HttpEndpointOptions>>().Value;
        (string Setting, int Port)[] listeners =
        [
            ("Mqtt:Tcp:Port", options.Tcp.Port),
            ("Mqtt:Tls:Port", options.Tls.Enabled ? options.Tls.Port : 0),
            ("Mqtt:WebSocket:Port", options.WebSocket.Port),
            ("Http:Port", http.Port),
        ];
        try
        {
            await app.RunAsync().ConfigureAwait(false);
            return 0;
        }
        catch (IOException ex) when (ex.InnerException is AddressInUseException)
        {
            // Kestrel's message names the endpoint ("Failed to bind to address http://127.0.0.1:1883: address already in use.").
            var taken = listeners.Where(l => l.Port > 0 && ex.Message.Contains($":{l.Port}:", StringComparison.Ordinal)).Select(l => $"{l.Setting}={l.Port}");
            await Console.Error.WriteLineAsync(
                $"Startup failed: {ex.Message} Another process listens on that port; change {string.Join(" or ", taken.DefaultIfEmpty("the listener's port setting"))}.").ConfigureAwait(false);
            return 2;
        }
        catch (OpenFileLimitException ex)
        {
            await Console.Error.WriteLineAsync($"Startup failed: {ex.Message}").ConfigureAwait(false);
            return 2;
        }
    }

    /// <summary>Maps MQTT over WebSocket, <c>/health/live</c>, <c>/health/ready</c>, <c>/metrics</c> and the admin API under <c>/api/v1</c>.</summary>
    public static WebApplication MapMqttGateway(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<MqttGatewayOptions>>().Value;
        var gateway = app.Services.GetRequiredService<MqttGateway>();
        var webSocket = app.Services.GetRequiredService<MqttWebSocketTransport>();
        app.UseWebSockets();
        app.Map(options.WebSocket.Path, webSocket.HandleAsync);
        app.MapGet("/health/live", () => Results.Text("live"));
        app.MapGet("/health/ready", () => gateway.IsReady
            ? Results.Text("ready")
            : Results.Text("not ready", statusCode: StatusCodes.Status503ServiceUnavailable));
        app.MapPrometheusScrapingEndpoint("/metrics");
        AdminApi.Map(app);

        // Kestrel accepts once the host has started every hosted service, the silo or cluster client included.
        app.Lifetime.ApplicationStarted.Register(gateway.MarkStarted);
        app.Lifetime.ApplicationStopping.Register(gateway.BeginDrain);
        return app;
    }
}
