using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Silo;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// One broker (silo and gateway) in this test process, as the standalone broker runs, on free loopback ports and its
/// own data directory, with one of its counters listened to: for tests that change what the silo's grains do (a call
/// filter, an ownership store) and watch how the gateway answers its clients.
/// </summary>
internal sealed class InProcessBroker : IAsyncDisposable
{
    /// <summary>How long a client, the broker's start or a condition is waited for.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "mqtt-in-process-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _counts = new();
    private readonly string[] _counterTags;
    private readonly WebApplication _app;

    private InProcessBroker(IReadOnlyDictionary<string, string?> settings, Action<IServiceCollection> services, string counter, string[] counterTags)
    {
        _counterTags = counterTags;
        Port = FreePort();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Test" });
        var configuration = new Dictionary<string, string?>
        {
            ["Orleans:ClusterId"] = "in-process-" + Guid.NewGuid().ToString("N")[..8],
            ["Orleans:SiloPort"] = FreePort().ToString(CultureInfo.InvariantCulture),
            ["Orleans:GatewayPort"] = FreePort().ToString(CultureInfo.InvariantCulture),
            ["Storage:DataDirectory"] = _dataDirectory,
            ["Mqtt:Tcp:Port"] = Port.ToString(CultureInfo.InvariantCulture),
            ["Mqtt:WebSocket:Port"] = "0",
            ["Http:Port"] = "0",
        };
        foreach (var (key, value) in settings)
        {
            configuration[key] = value;
        }

        builder.Configuration.AddInMemoryCollection(configuration);

        // Before the silo's own services, which fill a place only when the test has not.
        services(builder.Services);
        builder.UseOrleans(silo => silo.AddMqttSilo(builder.Configuration));
        builder.AddMqttGateway();
        _app = builder.Build();
        _app.MapMqttGateway();

        var meters = _app.Services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Scope == meters && instrument.Name == counter)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            var key = new string[_counterTags.Length];
            foreach (var tag in tags)
            {
                var index = Array.IndexOf(_counterTags, tag.Key);
                if (index >= 0)
                {
                    key[index] = tag.Value as string ?? string.Empty;
                }
            }

            _counts.AddOrUpdate(string.Join('/', key), value, (_, old) => old + value);
        });
    }

    /// <summary>The MQTT TCP port.</summary>
    public int Port { get; }

    public IGrainFactory Grains => _app.Services.GetRequiredService<IGrainFactory>();

    /// <summary>
    /// Starts a broker with <paramref name="settings"/> over its ports and data directory, <paramref name="services"/>
    /// registered before its own, and <paramref name="counter"/> counted by the values of <paramref name="counterTags"/>.
    /// </summary>
    public static async Task<InProcessBroker> StartAsync(IReadOnlyDictionary<string, string?> settings, Action<IServiceCollection> services, string counter, params string[] counterTags)
    {
        var broker = new InProcessBroker(settings, services, counter, counterTags);
        broker._listener.Start();
        await broker._app.StartAsync();
        var gateway = broker._app.Services.GetRequiredService<MqttGateway>();
        await WaitUntilAsync(() => Task.FromResult(gateway.IsReady), "the gateway is ready");
        return broker;
    }

    /// <summary>What the counter counted with these values of its tags, in the order they were named at the start.</summary>
    public long Count(params string[] tagValues) => _counts.TryGetValue(string.Join('/', tagValues), out var count) ? count : 0;

    /// <summary>Client options; an MQTT 5 session that is not clean expires 300 s after its connection ends.</summary>
    public MqttClientOptions Options(string clientId, MqttProtocolVersion version, bool cleanStart, string? willTopic = null)
    {
        var options = new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", Port)
            .WithClientId(clientId)
            .WithProtocolVersion(version)
            .WithCleanSession(cleanStart)
            .WithTimeout(Patience);
        if (version == MqttProtocolVersion.V500 && !cleanStart)
        {
            options.WithSessionExpiryInterval(300);
        }

        if (willTopic is not null)
        {
            options.WithWillTopic(willTopic).WithWillPayload(Encoding.UTF8.GetBytes("gone")).WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce);
        }

        return options.Build();
    }

    /// <summary>A connected client; fails the test when the broker refuses it.</summary>
    public async Task<IMqttClient> ConnectAsync(string clientId, MqttProtocolVersion version, bool cleanStart)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var result = await client.ConnectAsync(Options(clientId, version, cleanStart));
        Assert.Equal(MqttClientConnectResultCode.Success, result.ResultCode);
        return client;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds, failing the test after <see cref="Patience"/>.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        // Polled: a session's state and the gateway's readiness have no event to wait on from outside.
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(clock.Elapsed < Patience, $"not within {Patience}: {what}");
            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: the OS cleans its temporary directory.
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
