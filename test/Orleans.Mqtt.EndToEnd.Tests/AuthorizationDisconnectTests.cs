using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary><c>Mqtt:Acl:DenyAction Disconnect</c>: an MQTT 3.1.1 PUBLISH the ACL refuses closes the connection.</summary>
public sealed class AuthorizationDisconnectTests : IAsyncLifetime
{
    private string _directory = null!;
    private BrokerProcess _broker = null!;

    public async Task InitializeAsync()
    {
        _directory = BrokerProcess.TempDirectory();
        var acl = Path.Combine(_directory, "acl");
        await File.WriteAllTextAsync(acl, "pattern readwrite own/%c/#\n");
        _broker = await BrokerProcess.StartAsync(new Dictionary<string, string>
        {
            ["Mqtt__AclFile"] = acl,
            ["Mqtt__Acl__DenyAction"] = "Disconnect",
        });
    }

    public async Task DisposeAsync()
    {
        await _broker.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task A_refused_311_publish_closes_the_connection_and_an_allowed_one_does_not()
    {
        await using var client = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 4, "d1");
        await client.SendAsync(RawMqttClient.Publish("own/d1/up", "x"u8.ToArray(), qos: 1, packetId: 1));
        var (header, _) = await client.ReadPacketAsync() ?? throw new InvalidOperationException("closed after an allowed publish");
        Assert.Equal(0x40, header);

        await client.SendAsync(RawMqttClient.Publish("own/d2/up", "x"u8.ToArray(), qos: 1, packetId: 2));
        Assert.Empty(await client.ReadUntilClosedAsync());
        Assert.Equal(1, await _broker.GetCounterAsync("mqtt_acl_denied_total", "action=\"publish\""));
    }
}
