using MQTTnet;
using MQTTnet.Formatter;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>MQTTnet clients for the broker under test.</summary>
public static class MqttClients
{
    /// <summary>Options for a client of the broker on <paramref name="port"/> (MQTT 5 by default, a fresh client id when none is given).</summary>
    public static MqttClientOptions Options(int port, string? clientId = null, bool cleanStart = true, uint sessionExpiry = 0, MqttProtocolVersion version = MqttProtocolVersion.V500) =>
        new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", port)
            .WithProtocolVersion(version)
            .WithClientId(clientId ?? "e2e-" + Guid.NewGuid().ToString("N"))
            .WithCleanStart(cleanStart)
            .WithSessionExpiryInterval(version == MqttProtocolVersion.V500 ? sessionExpiry : 0)
            .Build();

    /// <summary>A connected client.</summary>
    public static async Task<IMqttClient> ConnectAsync(int port, string? clientId = null, bool cleanStart = true, uint sessionExpiry = 0, MqttProtocolVersion version = MqttProtocolVersion.V500)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        await client.ConnectAsync(Options(port, clientId, cleanStart, sessionExpiry, version));
        return client;
    }
}
