using System.Net;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// The admin API of a standalone broker without <c>Http:ApiKeysFile</c>: loopback callers need no key (the refusal of
/// other callers is decided by <c>AdminAccess.Decide</c>, tested without a network in the unit tests), and the API is
/// served on the HTTP port only, not on the MQTT WebSocket port.
/// </summary>
[Collection(SharedBrokerCollection.Name)]
public sealed class AdminApiLoopbackTests(SharedBroker shared)
{
    private readonly BrokerProcess _broker = shared.Broker;

    [Fact]
    public async Task Without_a_key_file_a_loopback_caller_needs_no_key_and_is_audited_as_loopback()
    {
        using var api = new AdminApiClient(_broker.HttpPort, apiKey: null);
        var health = await api.GetAsync("health");
        Assert.Equal("healthy", health.GetProperty("status").GetString());

        var topic = $"loopback/{Guid.NewGuid():N}";
        var published = await api.JsonAsync(HttpMethod.Post, "publish", new { topic, payload = "x" });
        Assert.Equal(0, published.GetProperty("sessions").GetInt32());
        await _broker.WaitForOutputAsync(l => l.Contains($"Admin action publish on {topic} ", StringComparison.Ordinal) && l.Contains("by key 'loopback'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_admin_api_is_not_served_on_the_websocket_port()
    {
        using var onWebSocketPort = new AdminApiClient(_broker.WebSocketPort, apiKey: null);
        using var response = await onWebSocketPort.SendAsync(HttpMethod.Get, "health");
        await AdminApiClient.AssertProblemAsync(response, HttpStatusCode.NotFound);
    }
}
