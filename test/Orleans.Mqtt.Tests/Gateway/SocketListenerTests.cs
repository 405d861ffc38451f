using System.Net.Sockets;
using System.Text;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// MQTT over TCP on the gateway's own transport (<c>Mqtt:Tcp:Transport</c> <c>Sockets</c>) in a whole broker: a
/// message through it both ways, and a stop with the connection still open.
/// </summary>
public sealed class SocketListenerTests
{
    [Theory]
    [InlineData(SocketError.TooManyOpenSockets, 0, 10)] // out of file descriptors: a pause before trying again
    [InlineData(SocketError.TooManyOpenSockets, 10, 20)] // still out of them: twice as long
    [InlineData(SocketError.NoBufferSpaceAvailable, 640, 1000)] // never more than a second
    [InlineData(SocketError.TooManyOpenSockets, 1000, 1000)]
    [InlineData(SocketError.ConnectionReset, 0, 0)] // a peer that gave up in the backlog: the next accept at once
    [InlineData(SocketError.ConnectionAborted, 40, 0)]
    public void An_accept_that_failed_for_want_of_a_resource_is_retried_after_a_pause_that_doubles(SocketError error, int previousMs, int pauseMs) =>
        Assert.Equal(
            TimeSpan.FromMilliseconds(pauseMs),
            MqttSocketListener.PauseAfterAcceptFailure(error, TimeSpan.FromMilliseconds(previousMs)));

    [Fact]
    public async Task A_message_goes_through_and_stopping_closes_the_open_connection_with_server_shutting_down()
    {
        var broker = await InProcessBroker.StartAsync(
            new Dictionary<string, string?> { ["Mqtt:Tcp:Transport"] = "Sockets" },
            _ => { },
            "mqtt.connections.closed",
            "reason");
        var disposed = false;
        try
        {
            using var client = await broker.ConnectAsync("socket-listener", MqttProtocolVersion.V500, cleanStart: true);
            var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            var disconnected = new TaskCompletionSource<MqttClientDisconnectReason>(TaskCreationOptions.RunContinuationsAsynchronously);
            client.ApplicationMessageReceivedAsync += e =>
            {
                received.TrySetResult(Encoding.UTF8.GetString(e.ApplicationMessage.Payload));
                return Task.CompletedTask;
            };
            client.DisconnectedAsync += e =>
            {
                disconnected.TrySetResult(e.Reason);
                return Task.CompletedTask;
            };

            await client.SubscribeAsync("socket/listener", MqttQualityOfServiceLevel.AtLeastOnce);
            var payload = new string('x', 100_000);
            await client.PublishStringAsync("socket/listener", payload, MqttQualityOfServiceLevel.AtLeastOnce);
            Assert.Equal(payload, await received.Task.WaitAsync(InProcessBroker.Patience));

            disposed = true;
            await broker.DisposeAsync().AsTask().WaitAsync(InProcessBroker.Patience);
            Assert.Equal(MqttClientDisconnectReason.ServerShuttingDown, await disconnected.Task.WaitAsync(InProcessBroker.Patience));
        }
        finally
        {
            if (!disposed)
            {
                await broker.DisposeAsync();
            }
        }
    }
}
