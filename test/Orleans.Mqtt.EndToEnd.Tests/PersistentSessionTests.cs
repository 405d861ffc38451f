using System.Diagnostics;
using System.Text.Json;
using MQTTnet;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// Persistent sessions with mosquitto_sub: QoS 1 messages published while the subscriber is away are delivered on
/// reconnect with session present, also across a graceful restart (SIGTERM) and a crash (SIGKILL) of the broker.
/// </summary>
/// <remarks>
/// A subscriber leaves only once the broker reports that it took every acknowledgement (<see cref="LeaveAsync"/>).
/// mosquitto_sub with <c>-C</c> exits right after printing its last message, and its acknowledgements may never reach
/// the broker: it writes the last PUBACKs and DISCONNECT, then closes its socket with the SUBACK of its resubscription
/// still unread, so its kernel resets the connection instead of closing it, and the broker's kernel drops what the
/// broker had not read yet (seen with strace against mosquitto itself, which then sends those messages again with DUP
/// as well). A message whose PUBACK the broker never got is rightly sent again; these tests check that one it did get
/// is not.
/// </remarks>
public sealed class PersistentSessionTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Queued_messages_survive_disconnects_and_broker_restarts_for_v311_and_v5()
    {
        await using var broker = await BrokerProcess.StartAsync();
        using var admin = new AdminApiClient(broker.HttpPort, apiKey: null);
        var sessions = new[]
        {
            new Session("mqttv311", "p311-" + Guid.NewGuid().ToString("N")[..8], []),
            new Session("mqttv5", "p5-" + Guid.NewGuid().ToString("N")[..8], ["-x", "60"]),
        };

        foreach (var s in sessions)
        {
            // Create the session: subscribe, receive one message, leave.
            await using var first = await s.SubscribeAsync(broker);
            await Mosquitto.PublishAsync(broker.MqttPort, s.Version, "-q", "1", "-t", s.Topic, "-m", "online");
            Assert.Equal("online", Mosquitto.Parse(await first.WaitForLineAsync(Mosquitto.IsMessage)).Payload);
            await LeaveAsync(admin, first, s);
        }

        // Offline: queue while disconnected; plain reconnect.
        await PublishBatchAsync(broker, sessions, "a");
        await ReceiveBatchAsync(broker, admin, sessions, "a");

        // Graceful restart of the broker: a connected MQTT 5 client is told 0x8B (server shutting down).
        await PublishBatchAsync(broker, sessions, "b");
        using var connected = new MqttClientFactory().CreateMqttClient();
        var disconnected = new TaskCompletionSource<MqttClientDisconnectReason>(TaskCreationOptions.RunContinuationsAsynchronously);
        connected.DisconnectedAsync += e =>
        {
            disconnected.TrySetResult(e.Reason);
            return Task.CompletedTask;
        };
        await connected.ConnectAsync(new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", broker.MqttPort)
            .WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V500)
            .Build());
        await broker.StopAsync();
        Assert.Equal(0, broker.ExitCode);
        Assert.Equal(MqttClientDisconnectReason.ServerShuttingDown, await disconnected.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        await broker.RestartAsync();
        await ReceiveBatchAsync(broker, admin, sessions, "b");

        // Crash of the broker: every message it acknowledged is still there.
        await PublishBatchAsync(broker, sessions, "c");
        await broker.KillAsync();
        await broker.RestartAsync();
        await ReceiveBatchAsync(broker, admin, sessions, "c");
    }

    [Fact]
    public async Task A_connected_subscriber_whose_session_left_memory_still_gets_its_messages_in_order()
    {
        await using var broker = await BrokerProcess.StartAsync(new() { ["Mqtt__SessionIdleTimeout"] = "00:00:02" });
        var session = new Session("mqttv5", "idle-" + Guid.NewGuid().ToString("N")[..8], ["-x", "60"]);
        await using var sub = await session.SubscribeAsync(broker, count: 3);
        Assert.Equal(1, await broker.GetCounterAsync("mqtt_sessions_in_memory"));

        // Nothing to do for 2 s: the session leaves the silo's memory while its client stays connected (keep-alive
        // pings end at the gateway).
        var clock = Stopwatch.StartNew();
        while (await broker.GetCounterAsync("mqtt_sessions_in_memory") != 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "the idle session stayed in memory");
            await Task.Delay(TimeSpan.FromMilliseconds(200));
        }

        // The first message wakes it with the live connection.
        await PublishBatchAsync(broker, [session], "idle");
        var received = await sub.WaitForLinesAsync(Mosquitto.IsMessage, 3);
        Assert.Equal(["idle0", "idle1", "idle2"], received.Select(l => Mosquitto.Parse(l).Payload));
        Assert.All(received, l => Assert.Equal(1, Mosquitto.Parse(l).Qos));
        await sub.WaitForExitAsync(TimeSpan.FromSeconds(10));
    }

    private static async Task PublishBatchAsync(BrokerProcess broker, Session[] sessions, string batch)
    {
        foreach (var s in sessions)
        {
            for (var i = 0; i < 3; i++)
            {
                await Mosquitto.PublishAsync(broker.MqttPort, s.Version, "-q", "1", "-t", s.Topic, "-m", $"{batch}{i}");
            }
        }
    }

    private static async Task ReceiveBatchAsync(BrokerProcess broker, AdminApiClient admin, Session[] sessions, string batch)
    {
        foreach (var s in sessions)
        {
            await using var sub = s.StartSubscriber(broker);
            await sub.WaitForLinesAsync(Mosquitto.IsMessage, 3);
            await LeaveAsync(admin, sub, s);

            // Every message the subscriber printed before it exited: exactly the batch, nothing from before.
            var received = sub.Lines.Where(Mosquitto.IsMessage).ToList();
            Assert.Equal([$"{batch}0", $"{batch}1", $"{batch}2"], received.Select(l => Mosquitto.Parse(l).Payload));
            Assert.All(received, l => Assert.Equal(1, Mosquitto.Parse(l).Qos));
        }
    }

    /// <summary>
    /// Waits until the broker has taken every acknowledgement of <paramref name="session"/> (nothing queued, nothing in
    /// flight: the session stores that before it answers anything else), then stops the subscriber and waits until the
    /// session is offline, so that what is published next is queued for it.
    /// </summary>
    private static async Task LeaveAsync(AdminApiClient admin, CliProcess sub, Session session)
    {
        await WaitForSessionAsync(admin, session, d => d.GetProperty("queuedMessages").GetInt32() == 0 && d.GetProperty("inflightMessages").GetInt32() == 0, "took every acknowledgement");
        await sub.TerminateAsync(TimeSpan.FromSeconds(10));
        await WaitForSessionAsync(admin, session, d => !d.GetProperty("connected").GetBoolean(), "is offline");
    }

    private static async Task WaitForSessionAsync(AdminApiClient admin, Session session, Func<JsonElement, bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var details = await admin.GetAsync($"clients/{session.ClientId}");
            if (condition(details))
            {
                return;
            }

            Assert.True(clock.Elapsed < Wait, $"the session of {session.ClientId} never {what}: {details}");
            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }
    }

    private sealed record Session(string Version, string ClientId, string[] Extra)
    {
        public string Topic => $"e2e/persistent/{ClientId}";

        /// <summary>Subscribes; without <paramref name="count"/> the subscriber runs until it is stopped.</summary>
        public Task<CliProcess> SubscribeAsync(BrokerProcess broker, int? count = null) =>
            Mosquitto.SubscribeAsync(broker.MqttPort, Version, Arguments(count));

        public CliProcess StartSubscriber(BrokerProcess broker, int? count = null) =>
            Mosquitto.StartSubscriber(broker.MqttPort, Version, Arguments(count));

        private string[] Arguments(int? count) =>
            count is { } n
                ? [.. Extra, "-c", "-i", ClientId, "-q", "1", "-t", Topic, "-C", n.ToString(System.Globalization.CultureInfo.InvariantCulture)]
                : [.. Extra, "-c", "-i", ClientId, "-q", "1", "-t", Topic];
    }
}
