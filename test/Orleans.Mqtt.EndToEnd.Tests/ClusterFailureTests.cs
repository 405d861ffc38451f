using System.Collections.Concurrent;
using System.Diagnostics;
using MQTTnet;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// Processes killed with SIGKILL in a real cluster (etcd, three silos, two gateways). Each test starts its own
/// cluster, since it breaks it.
/// </summary>
public sealed class ClusterFailureTests(ITestOutputHelper output) : IAsyncLifetime
{
    // $SYS at its default period: these tests do not read it, and every publication is a replicated write.
    private readonly ClusterFixture _cluster = new(TimeSpan.FromSeconds(10));

    public Task InitializeAsync() => _cluster.InitializeAsync();

    public Task DisposeAsync() => _cluster.DisposeAsync();

    [Fact]
    public async Task Every_acknowledged_qos1_message_reaches_persistent_subscribers_after_their_gateway_is_killed()
    {
        const int Subscribers = 10;
        const int Publishers = 4;
        var prefix = "kill-gw/" + Guid.NewGuid().ToString("N")[..8];
        var received = new ConcurrentDictionary<string, byte>();
        var subscribers = new List<IMqttClient>();
        for (var i = 0; i < Subscribers; i++)
        {
            var client = await ConnectPersistentAsync(_cluster.GatewayAMqttPort, $"{prefix}-sub-{i}", received);
            await client.SubscribeAsync($"{prefix}/{i}", MqttQualityOfServiceLevel.AtLeastOnce);
            subscribers.Add(client);
        }

        // Publishers on gateway B keep publishing QoS 1 through the kill; a message counts once its PUBACK arrived.
        var acknowledged = new ConcurrentDictionary<string, byte>();
        using var stop = new CancellationTokenSource();
        var publishing = Enumerable.Range(0, Publishers).Select(p => Task.Run(async () =>
        {
            using var publisher = await MqttClients.ConnectAsync(_cluster.GatewayBMqttPort, $"{prefix}-pub-{p}");
            for (var n = 0; !stop.IsCancellationRequested; n++)
            {
                var payload = $"{p}:{n}";
                var topic = $"{prefix}/{n % Subscribers}";
                var result = await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload)
                    .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                if (result.ReasonCode is MqttClientPublishReasonCode.Success or MqttClientPublishReasonCode.NoMatchingSubscribers)
                {
                    acknowledged[payload] = 0;
                }
            }
        })).ToList();

        await Task.Delay(1500);
        var beforeKill = acknowledged.Count;
        await _cluster.KillAsync(_cluster.Gateways[0]);
        await Task.Delay(5000);
        await stop.CancelAsync();
        await Task.WhenAll(publishing);
        foreach (var s in subscribers)
        {
            s.Dispose();
        }

        // The subscribers come back on the other gateway and get what was queued or left in flight for them.
        var resumed = new List<IMqttClient>();
        for (var i = 0; i < Subscribers; i++)
        {
            resumed.Add(await ConnectPersistentAsync(_cluster.GatewayBMqttPort, $"{prefix}-sub-{i}", received));
        }

        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30) && acknowledged.Keys.Any(k => !received.ContainsKey(k)))
        {
            await Task.Delay(100);
        }

        var missing = acknowledged.Keys.Where(k => !received.ContainsKey(k)).ToList();
        output.WriteLine($"{acknowledged.Count} messages acknowledged ({beforeKill} before the kill), {received.Count} distinct received, {missing.Count} missing");
        Assert.True(acknowledged.Count > beforeKill, "no message was acknowledged after the kill");
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged messages never arrived, e.g. {string.Join(", ", missing.Take(10))}\n{_cluster.Logs()}");
        foreach (var c in resumed)
        {
            c.Dispose();
        }
    }

    [Fact]
    public async Task Subscriptions_and_retained_messages_survive_a_killed_silo_and_publishing_resumes()
    {
        const int Sessions = 20;
        var prefix = "kill-silo/" + Guid.NewGuid().ToString("N")[..8];
        var received = new ConcurrentDictionary<string, byte>();
        var subscribers = new List<IMqttClient>();
        for (var i = 0; i < Sessions; i++)
        {
            // Sessions spread over the silos: some of their grains die with the silo.
            var client = await ConnectPersistentAsync(i % 2 == 0 ? _cluster.GatewayAMqttPort : _cluster.GatewayBMqttPort, $"{prefix}-sub-{i}", received);
            await client.SubscribeAsync($"{prefix}/{i}", MqttQualityOfServiceLevel.AtLeastOnce);
            subscribers.Add(client);
        }

        var publisher = await MqttClients.ConnectAsync(_cluster.GatewayBMqttPort, $"{prefix}-pub");
        for (var r = 0; r < 20; r++)
        {
            await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"{prefix}/retained/{r}").WithPayload($"r{r}").WithRetainFlag()
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        }

        // A steady stream to one topic: the gap around the kill is what users see.
        var deliveries = new ConcurrentQueue<(string Payload, TimeSpan At)>();
        var clock = Stopwatch.StartNew();
        using var watcher = await MqttClients.ConnectAsync(_cluster.GatewayAMqttPort, $"{prefix}-watch");
        watcher.ApplicationMessageReceivedAsync += e =>
        {
            deliveries.Enqueue((e.ApplicationMessage.ConvertPayloadToString(), clock.Elapsed));
            return Task.CompletedTask;
        };
        await watcher.SubscribeAsync($"{prefix}/stream", MqttQualityOfServiceLevel.AtMostOnce);
        using var stop = new CancellationTokenSource();
        var published = new ConcurrentDictionary<int, TimeSpan>();
        var streaming = Task.Run(async () =>
        {
            var streamer = publisher;
            for (var n = 0; !stop.IsCancellationRequested; n++)
            {
                try
                {
                    if (!streamer.IsConnected)
                    {
                        // A publish into the dead silo timed out and the client was disconnected: like a device, it
                        // connects again and goes on; the resume time counts from the kill, reconnect included.
                        streamer = await MqttClients.ConnectAsync(_cluster.GatewayBMqttPort, $"{prefix}-stream-{n}");
                    }

                    // A PUBACK that waits on the dead silo is not waited for: the next message goes after 2 s.
                    using var patience = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
                    patience.CancelAfter(TimeSpan.FromSeconds(2));
                    published[n] = clock.Elapsed;
                    await streamer.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"{prefix}/stream").WithPayload(n.ToString())
                        .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build(), patience.Token);
                }
                catch (Exception) when (!stop.IsCancellationRequested)
                {
                    // Unanswered or refused while membership converges: the next iteration tries again.
                }
                catch (Exception)
                {
                    break;
                }

                await Task.Delay(20);
            }

            if (streamer != publisher)
            {
                streamer.Dispose();
            }
        });

        await Task.Delay(1000);
        var killedAt = clock.Elapsed;
        await _cluster.KillAsync(_cluster.Silos[1]);

        // Resumed: a message published after the kill arrived.
        var resumeDeadline = killedAt + TimeSpan.FromSeconds(60);
        TimeSpan? resumedAt = null;
        while (clock.Elapsed < resumeDeadline && resumedAt is null)
        {
            await Task.Delay(50);
            foreach (var (payload, at) in deliveries)
            {
                if (published.TryGetValue(int.Parse(payload), out var sentAt) && sentAt > killedAt)
                {
                    resumedAt = at;
                    break;
                }
            }
        }

        Assert.True(resumedAt is not null, $"publishing did not resume within 60 s of the kill\n{_cluster.Logs()}");
        var gaps = deliveries.Select(d => d.At).Order().ToList();
        var maxGap = gaps.Zip(gaps.Skip(1), (a, b) => b - a).DefaultIfEmpty().Max();
        output.WriteLine($"publishing resumed {(resumedAt.Value - killedAt).TotalSeconds:F2} s after the kill; longest gap between deliveries {maxGap.TotalSeconds:F2} s");

        // Every subscription made before the kill still routes, wherever its session grain was. A publish that
        // reaches a grain of the dead silo before membership has converged fails (PUBACK 0x80): the client
        // publishes again, as a real one would. The time until every topic is delivered is what users wait.
        var routed = Stopwatch.StartNew();
        var attempts = 0;
        while (routed.Elapsed < TimeSpan.FromSeconds(60) && Enumerable.Range(0, Sessions).Any(i => !received.ContainsKey($"after-{i}")))
        {
            var retry = await MqttClients.ConnectAsync(_cluster.GatewayBMqttPort, $"{prefix}-retry-{attempts}");
            try
            {
                foreach (var i in Enumerable.Range(0, Sessions).Where(i => !received.ContainsKey($"after-{i}")))
                {
                    attempts++;
                    await retry.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"{prefix}/{i}").WithPayload($"after-{i}")
                        .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                }
            }
            catch (MQTTnet.Exceptions.MqttCommunicationException)
            {
                // No PUBACK within the client's timeout (a call into the dead silo waited): connect again and go on.
            }
            finally
            {
                retry.Dispose();
            }

            await WaitAsync(() => Enumerable.Range(0, Sessions).All(i => received.ContainsKey($"after-{i}")), TimeSpan.FromSeconds(2));
        }

        var allRoutedAt = clock.Elapsed;
        var lost = Enumerable.Range(0, Sessions).Where(i => !received.ContainsKey($"after-{i}")).ToList();
        output.WriteLine($"every subscription delivered again {(allRoutedAt - killedAt).TotalSeconds:F2} s after the kill ({attempts} publishes for {Sessions} topics)");
        Assert.True(lost.Count == 0, $"subscriptions lost with the silo: {string.Join(", ", lost)}\n{_cluster.Logs()}");

        // Every retained message set before the kill is served to a new subscriber.
        var retained = new ConcurrentDictionary<string, byte>();
        using var late = await MqttClients.ConnectAsync(_cluster.GatewayAMqttPort, $"{prefix}-late");
        late.ApplicationMessageReceivedAsync += e =>
        {
            retained[e.ApplicationMessage.ConvertPayloadToString()] = 0;
            return Task.CompletedTask;
        };
        await late.SubscribeAsync($"{prefix}/retained/#", MqttQualityOfServiceLevel.AtLeastOnce);
        await WaitAsync(() => retained.Count == 20, TimeSpan.FromSeconds(10));
        Assert.Equal(20, retained.Count);

        await stop.CancelAsync();
        await streaming;
        publisher.Dispose();
        foreach (var s in subscribers)
        {
            s.Dispose();
        }
    }

    [Fact]
    public async Task Offline_sessions_keep_their_queues_through_a_silo_killed_and_restarted_on_its_data()
    {
        const int Sessions = 24;
        var prefix = "restart-silo/" + Guid.NewGuid().ToString("N")[..8];
        var received = new ConcurrentDictionary<string, byte>();

        // Sessions spread over the three silos; each silo's disk holds the ones it hosts.
        await OfflineSessionsWithQueuedMessagesAsync(prefix, Sessions, received);

        // A silo crashes and comes back on its data directory under a new address (a new generation). Nothing
        // touched its sessions meanwhile, so their state is on its disk only.
        var silo = _cluster.Silos[1];
        await _cluster.KillAsync(silo);
        await _cluster.RestartAsync(silo);

        foreach (var line in silo.Lines.Where(l => l.Contains("replayed", StringComparison.Ordinal)))
        {
            output.WriteLine(line);
        }

        // Every client comes back, through either gateway, and gets its queued message.
        await AssertQueuedMessagesResentAsync(prefix, Sessions, received, "the restart");

        // The restarted silo's check of its stored sessions against the routes, at its start, ran without failing.
        Assert.DoesNotContain(silo.Lines, l => l.Contains("stale session copies", StringComparison.Ordinal) && l.Contains("fail", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_silo_stopped_gracefully_hands_its_sessions_over_and_drops_its_copies_when_it_comes_back()
    {
        const int Sessions = 24;
        var prefix = "handover-silo/" + Guid.NewGuid().ToString("N")[..8];
        var received = new ConcurrentDictionary<string, byte>();
        await OfflineSessionsWithQueuedMessagesAsync(prefix, Sessions, received);

        // Stopped gracefully, the silo hands the sessions it holds (offline, still in memory) to the others, which
        // store them and become their homes; it keeps its own copies.
        var silo = _cluster.Silos[1];
        await _cluster.StopAsync(silo);

        // Its outbox to the gateways was drained before its messaging stopped, with one line saying what (if anything)
        // it could not push.
        var drained = Assert.Single(await silo.Process.WaitForLinesAsync(l => l.Contains("Silo stopping: ", StringComparison.Ordinal), 1, TimeSpan.FromSeconds(10)));
        output.WriteLine(drained);

        // Back on its data directory, it finds those copies stale and drops them before it serves anyone. The line is
        // written before the silo answers ready, but its console logger and the test's reader of its output may pass
        // it on a moment after the answer: waited for, not read at once (the timeout's message lists the silo's lines).
        await _cluster.RestartAsync(silo);
        var report = Assert.Single(await silo.Process.WaitForLinesAsync(l => l.Contains("stale session copies from this silo's storage", StringComparison.Ordinal), 1, TimeSpan.FromSeconds(10)));
        var dropped = int.Parse(System.Text.RegularExpressions.Regex.Match(report, @"Dropped (\d+) stale").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        output.WriteLine(report);
        Assert.True(dropped > 0, report);

        // Every client comes back and gets its queued message from the session's new home.
        await AssertQueuedMessagesResentAsync(prefix, Sessions, received, "the hand-over");
    }

    /// <summary>Persistent sessions <c>{prefix}-sub-{i}</c> spread over both gateways, each offline with a QoS 1 message queued.</summary>
    private async Task OfflineSessionsWithQueuedMessagesAsync(string prefix, int sessions, ConcurrentDictionary<string, byte> received)
    {
        for (var i = 0; i < sessions; i++)
        {
            using var client = await ConnectPersistentAsync(i % 2 == 0 ? _cluster.GatewayAMqttPort : _cluster.GatewayBMqttPort, $"{prefix}-sub-{i}", received);
            await client.SubscribeAsync($"{prefix}/{i}", MqttQualityOfServiceLevel.AtLeastOnce);
            await client.DisconnectAsync();
        }

        // A PUBACK means the message is stored with its session.
        using var publisher = await MqttClients.ConnectAsync(_cluster.GatewayBMqttPort, $"{prefix}-pub");
        for (var i = 0; i < sessions; i++)
        {
            var result = await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"{prefix}/{i}").WithPayload($"queued-{i}")
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            Assert.Equal(MqttClientPublishReasonCode.Success, result.ReasonCode);
        }
    }

    /// <summary>Each of those clients comes back, through the other gateway, and gets its queued message.</summary>
    private async Task AssertQueuedMessagesResentAsync(string prefix, int sessions, ConcurrentDictionary<string, byte> received, string what)
    {
        var resumed = new List<IMqttClient>();
        try
        {
            for (var i = 0; i < sessions; i++)
            {
                resumed.Add(await ConnectPersistentAsync(i % 2 == 0 ? _cluster.GatewayBMqttPort : _cluster.GatewayAMqttPort, $"{prefix}-sub-{i}", received));
            }

            await WaitAsync(() => received.Count == sessions, TimeSpan.FromSeconds(30));
            var missing = Enumerable.Range(0, sessions).Where(i => !received.ContainsKey($"queued-{i}")).ToList();
            Assert.True(missing.Count == 0, $"queued messages lost with {what}: {string.Join(", ", missing)}\n{_cluster.Logs()}");
        }
        finally
        {
            foreach (var c in resumed)
            {
                c.Dispose();
            }
        }
    }

    private static async Task<IMqttClient> ConnectPersistentAsync(int port, string clientId, ConcurrentDictionary<string, byte> received)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        client.ApplicationMessageReceivedAsync += e =>
        {
            received[e.ApplicationMessage.ConvertPayloadToString()] = 0;
            return Task.CompletedTask;
        };
        await client.ConnectAsync(MqttClients.Options(port, clientId, cleanStart: false, sessionExpiry: 600));
        return client;
    }

    private static async Task WaitAsync(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition() && clock.Elapsed < timeout)
        {
            await Task.Delay(50);
        }
    }
}
