using System.Diagnostics;
using MQTTnet;
using MQTTnet.Formatter;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>Username/password from a users file written by the broker's own command, and Mqtt:MaxConnections.</summary>
public sealed class AuthenticationAndLimitsTests : IAsyncLifetime
{
    private string _directory = null!;
    private BrokerProcess _broker = null!;

    public async Task InitializeAsync()
    {
        _directory = BrokerProcess.TempDirectory();
        var usersFile = Path.Combine(_directory, "users");
        await UsersFileTool.AddUserAsync(usersFile, "alice", "correct horse");
        _broker = await BrokerProcess.StartAsync(new Dictionary<string, string>
        {
            ["Mqtt__UsersFile"] = usersFile,
            ["Mqtt__AllowAnonymous"] = "false",
            ["Mqtt__MaxConnections"] = "3",
        });
    }

    public async Task DisposeAsync()
    {
        await _broker.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311, MqttClientConnectResultCode.BadUserNameOrPassword, MqttClientConnectResultCode.NotAuthorized)]
    [InlineData(MqttProtocolVersion.V500, MqttClientConnectResultCode.BadUserNameOrPassword, MqttClientConnectResultCode.NotAuthorized)]
    public async Task Credentials_are_checked(MqttProtocolVersion version, MqttClientConnectResultCode wrongPassword, MqttClientConnectResultCode anonymous)
    {
        var before = await _broker.GetCounterAsync("mqtt_connections_refused_total", "reason=\"bad_credentials\"");

        using (var good = await ConnectAsync(version, "alice", "correct horse"))
        {
            Assert.True(good.IsConnected);
        }

        Assert.Equal(wrongPassword, await RefusedAsync(version, "alice", "wrong"));
        Assert.Equal(wrongPassword, await RefusedAsync(version, "mallory", "correct horse"));
        Assert.Equal(anonymous, await RefusedAsync(version, null, null));

        await _broker.WaitForOutputAsync(l => l.Contains("refused (bad_credentials)", StringComparison.Ordinal) && l.Contains("'mallory'", StringComparison.Ordinal));
        await _broker.WaitForOutputAsync(l => l.Contains("refused (not_authorized)", StringComparison.Ordinal));
        Assert.True(await _broker.GetCounterAsync("mqtt_connections_refused_total", "reason=\"bad_credentials\"") >= before + 2);
    }

    [Fact]
    public async Task A_refusing_connack_stays_within_the_clients_maximum_packet_size()
    {
        // Maximum Packet Size 20 (property 0x27): the CONNACK 0x86 must fit, so it carries no reason string [MQTT-3.2.2-19].
        await using var small = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await small.SendAsync(RawMqttClient.Connect(5, "small-" + Guid.NewGuid().ToString("N"), username: "alice", password: "wrong",
            properties: Mqtt5Properties.Of(Mqtt5Properties.FourByte(0x27, 20))));
        var (header, body) = (await small.ReadPacketAsync())!.Value;
        Assert.Equal(0x20, header);
        Assert.Equal(0x86, body[1]);
        Assert.True(body.Length + 2 <= 20, $"CONNACK of {body.Length + 2} bytes");

        // Without a limit the same refusal explains itself.
        await using var large = await RawMqttClient.ConnectAsync(_broker.MqttPort);
        await large.SendAsync(RawMqttClient.Connect(5, "large-" + Guid.NewGuid().ToString("N"), username: "alice", password: "wrong"));
        var (_, explained) = (await large.ReadPacketAsync())!.Value;
        Assert.Equal(0x86, explained[1]);
        Assert.True(Mqtt5Properties.Read(explained, 2).Properties.ContainsKey(0x1F));
    }

    [Fact]
    public async Task Connections_over_the_limit_are_refused_and_the_others_keep_working()
    {
        var factory = new MqttClientFactory();
        var clients = new List<IMqttClient>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                clients.Add(await ConnectAsync(MqttProtocolVersion.V500, "alice", "correct horse"));
            }

            Assert.Equal(MqttClientConnectResultCode.QuotaExceeded, await RefusedAsync(MqttProtocolVersion.V500, "alice", "correct horse"));
            Assert.Equal(MqttClientConnectResultCode.ServerUnavailable, await RefusedAsync(MqttProtocolVersion.V311, "alice", "correct horse"));
            await _broker.WaitForOutputAsync(l => l.Contains("refused (max_connections)", StringComparison.Ordinal));
            Assert.True(await _broker.GetCounterAsync("mqtt_connections_refused_total", "reason=\"max_connections\"") >= 2);

            // The three admitted clients still talk to each other.
            var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            clients[0].ApplicationMessageReceivedAsync += e =>
            {
                received.TrySetResult(e.ApplicationMessage.ConvertPayloadToString());
                return Task.CompletedTask;
            };
            await clients[0].SubscribeAsync("limits/t", MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce);
            await clients[1].PublishStringAsync("limits/t", "hello", MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce);
            Assert.Equal("hello", await received.Task.WaitAsync(TimeSpan.FromSeconds(10)));

            // A slot frees when a client leaves.
            await clients[2].DisconnectAsync();
            clients[2].Dispose();
            clients.RemoveAt(2);
            await WaitUntilAsync(async () => await TryConnectAsync() is { } c && Keep(clients, c));
        }
        finally
        {
            foreach (var c in clients)
            {
                c.Dispose();
            }
        }
    }

    private static bool Keep(List<IMqttClient> clients, IMqttClient client)
    {
        clients.Add(client);
        return true;
    }

    private async Task<IMqttClient?> TryConnectAsync()
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var result = await client.ConnectAsync(Options(MqttProtocolVersion.V500, "alice", "correct horse"));
        if (result.ResultCode == MqttClientConnectResultCode.Success)
        {
            return client;
        }

        client.Dispose();
        return null;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        // The broker frees the slot when it has processed the DISCONNECT; retry the connect until then.
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), "slot was not released");
            await Task.Yield();
        }
    }

    private async Task<IMqttClient> ConnectAsync(MqttProtocolVersion version, string? user, string? password)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var result = await client.ConnectAsync(Options(version, user, password));
        Assert.Equal(MqttClientConnectResultCode.Success, result.ResultCode);
        return client;
    }

    private async Task<MqttClientConnectResultCode> RefusedAsync(MqttProtocolVersion version, string? user, string? password)
    {
        using var client = new MqttClientFactory().CreateMqttClient();
        var result = await client.ConnectAsync(Options(version, user, password));
        return result.ResultCode;
    }

    private MqttClientOptions Options(MqttProtocolVersion version, string? user, string? password)
    {
        var builder = new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", _broker.MqttPort)
            .WithProtocolVersion(version)
            .WithClientId("auth-" + Guid.NewGuid().ToString("N"))
            .WithTimeout(TimeSpan.FromSeconds(10));
        if (user is not null)
        {
            builder.WithCredentials(user, password);
        }

        return builder.Build();
    }
}
