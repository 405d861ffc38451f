using System.Text;
using MQTTnet;
using MQTTnet.Protocol;
using Orleans.Mqtt.Clustering.Tests;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// The separate hosts as a cluster on loopback: a real etcd for membership, two silo processes and a gateway process
/// (an Orleans client). The first step of the cluster work; failure and catch-up tests come with it.
/// </summary>
public sealed class ClusterTests : IAsyncLifetime
{
    private readonly EtcdServer _etcd = new();
    private readonly List<CliProcess> _processes = [];
    private readonly string _directory = BrokerProcess.TempDirectory();
    private readonly int _mqttPort = BrokerProcess.FreePort();
    private readonly int _httpPort = BrokerProcess.FreePort();

    public async Task InitializeAsync()
    {
        await _etcd.InitializeAsync();
        var clustering = new Dictionary<string, string>
        {
            ["Clustering__Provider"] = "Etcd",
            ["Clustering__Etcd__ConnectionString"] = _etcd.ClientUrl,
            ["Orleans__ClusterId"] = "e2e-" + Guid.NewGuid().ToString("N")[..8],
            ["DOTNET_ENVIRONMENT"] = "Production",
        };

        for (var i = 0; i < 2; i++)
        {
            var silo = Start(Paths.SiloDll, new Dictionary<string, string>(clustering)
            {
                ["Orleans__SiloPort"] = BrokerProcess.FreePort().ToString(),
                ["Orleans__GatewayPort"] = BrokerProcess.FreePort().ToString(),
                ["Storage__DataDirectory"] = Path.Combine(_directory, $"silo{i}"),
            });
            await silo.WaitForLineAsync(l => l.Contains("Application started", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        }

        Start(Paths.GatewayDll, new Dictionary<string, string>(clustering)
        {
            ["Mqtt__Tcp__Port"] = _mqttPort.ToString(),
            ["Mqtt__WebSocket__Port"] = "0",
            ["Http__Port"] = _httpPort.ToString(),
        });
        await WaitReadyAsync();
    }

    public async Task DisposeAsync()
    {
        foreach (var p in _processes)
        {
            await p.DisposeAsync();
        }

        await _etcd.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Messages_and_retained_messages_flow_through_a_gateway_and_two_silos_with_etcd_membership()
    {
        var prefix = $"cluster/{Guid.NewGuid():N}";
        var received = new HashSet<string>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscriber = await MqttClients.ConnectAsync(_mqttPort);
        subscriber.ApplicationMessageReceivedAsync += e =>
        {
            lock (received)
            {
                received.Add(e.ApplicationMessage.ConvertPayloadToString());
                if (received.Count == 40)
                {
                    all.TrySetResult();
                }
            }

            return Task.CompletedTask;
        };
        await subscriber.SubscribeAsync(prefix + "/#", MqttQualityOfServiceLevel.AtLeastOnce);

        // Forty topics spread over the topic shards, which are placed on both silos.
        using var publisher = await MqttClients.ConnectAsync(_mqttPort);
        for (var i = 0; i < 40; i++)
        {
            var ack = await publisher.PublishAsync(new MqttApplicationMessageBuilder()
                .WithTopic($"{prefix}/t{i}").WithPayload(Encoding.UTF8.GetBytes($"m{i}"))
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            Assert.True(ack.IsSuccess);
        }

        await all.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(Enumerable.Range(0, 40).Select(i => $"m{i}").Order(), received.Order());

        // A retained message acknowledged through the gateway is served to a later subscriber.
        await publisher.PublishAsync(new MqttApplicationMessageBuilder()
            .WithTopic(prefix + "/status").WithPayload("up").WithRetainFlag()
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        var retained = new TaskCompletionSource<MqttApplicationMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var late = await MqttClients.ConnectAsync(_mqttPort);
        late.ApplicationMessageReceivedAsync += e =>
        {
            retained.TrySetResult(e.ApplicationMessage);
            return Task.CompletedTask;
        };
        await late.SubscribeAsync(prefix + "/status", MqttQualityOfServiceLevel.AtLeastOnce);
        var message = await retained.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("up", message.ConvertPayloadToString());
        Assert.True(message.Retain);
    }

    private CliProcess Start(string dll, Dictionary<string, string> environment)
    {
        var workingDirectory = Path.Combine(_directory, "cwd-" + _processes.Count);
        Directory.CreateDirectory(workingDirectory);
        var process = CliProcess.Start("dotnet", [dll], environment, workingDirectory);
        _processes.Add(process);
        return process;
    }

    private async Task WaitReadyAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            try
            {
                using var response = await http.GetAsync($"http://127.0.0.1:{_httpPort}/health/ready");
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            Assert.True(DateTime.UtcNow < deadline, "gateway not ready:\n" + string.Join('\n', _processes.SelectMany(p => p.Lines).TakeLast(40)));

            // Readiness is polled: the gateway offers no push signal before its HTTP endpoint is up.
            await Task.Delay(100);
        }
    }
}
