using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using MQTTnet;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// The guarantees across gateways, through real processes: etcd, three silos and two gateways (see
/// <see cref="ClusterFixture"/>). Publishers use gateway A, subscribers gateway B, unless a test says otherwise.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterTests(ClusterFixture cluster, ITestOutputHelper output)
{
    private const int Trials = 1000;
    private const int Concurrency = 16;
    private static readonly TimeSpan TrialDeadline = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Qos_0_1_and_2_messages_cross_gateways_as_their_qos_says_and_in_order_per_topic()
    {
        const int perTopic = 50;
        const int topicsPerQos = 4;
        var prefix = NewPrefix();
        var received = new ConcurrentDictionary<string, ConcurrentQueue<(string Payload, MqttQualityOfServiceLevel Qos)>>();
        var fenced = new ConcurrentDictionary<string, byte>();
        var allFenced = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscriber = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort);
        subscriber.ApplicationMessageReceivedAsync += e =>
        {
            var m = e.ApplicationMessage;
            var payload = m.ConvertPayloadToString();
            received.GetOrAdd(m.Topic, _ => new()).Enqueue((payload, m.QualityOfServiceLevel));
            if (payload == "fence" && fenced.TryAdd(m.Topic, 0) && fenced.Count == 3 * topicsPerQos)
            {
                allFenced.TrySetResult();
            }

            return Task.CompletedTask;
        };
        var granted = await subscriber.SubscribeAsync(prefix + "/#", MqttQualityOfServiceLevel.ExactlyOnce);
        Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS2, granted.Items.Single().ResultCode);

        // One publisher, all topics at once (several topic shards on several silos work together), each topic's
        // messages one after the other.
        using var publisher = await MqttClients.ConnectAsync(cluster.GatewayAMqttPort);
        var publishTimes = new double[3 * topicsPerQos];
        await Task.WhenAll(Enumerable.Range(0, 3 * topicsPerQos).Select(async n =>
        {
            var (qos, t) = Math.DivRem(n, topicsPerQos);
            var started = Stopwatch.GetTimestamp();
            for (var i = 0; i <= perTopic; i++)
            {
                // The last message of each topic is a fence: per-topic order puts every earlier message before it.
                var payload = i == perTopic ? "fence" : i.ToString(CultureInfo.InvariantCulture);
                var ack = await publisher.PublishAsync(Message($"{prefix}/q{qos}/t{t}", payload, (MqttQualityOfServiceLevel)qos));
                Assert.True(ack.IsSuccess, $"publish q{qos}/t{t} #{i}: {ack.ReasonCode}");
            }

            publishTimes[n] = Stopwatch.GetElapsedTime(started).TotalMilliseconds / (perTopic + 1);
        }));
        output.WriteLine("mean publish time per message, one topic's messages one after the other: "
            + string.Join(", ", Enumerable.Range(0, 3).Select(q => $"QoS {q} {publishTimes.Skip(q * topicsPerQos).Take(topicsPerQos).Average():F1} ms")));

        await WaitAsync(allFenced.Task, TimeSpan.FromSeconds(20), () => $"fences ({fenced.Count} of {3 * topicsPerQos} topics complete; received per topic: "
            + string.Join(", ", received.Select(kv => $"{kv.Key[(prefix.Length + 1)..]}={kv.Value.Count}")) + ")");

        var expected = Enumerable.Range(0, perTopic).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList();
        for (var qos = 0; qos <= 2; qos++)
        {
            for (var t = 0; t < topicsPerQos; t++)
            {
                var topic = $"{prefix}/q{qos}/t{t}";
                var messages = received[topic].Where(m => m.Payload != "fence").ToList();
                Assert.All(messages, m => Assert.Equal((MqttQualityOfServiceLevel)qos, m.Qos));
                var payloads = messages.Select(m => m.Payload).ToList();
                if (qos == 1)
                {
                    // At least once: a repeat is allowed, a gap is not, and first arrivals keep the publish order.
                    payloads = payloads.Distinct().ToList();
                }

                // QoS 0 is at most once, but nothing is lost on a healthy loopback cluster far below every queue limit;
                // QoS 2 is exactly once.
                Assert.True(expected.SequenceEqual(payloads), $"{topic}: got [{string.Join(',', messages.Select(m => m.Payload))}]");
            }
        }
    }

    [Fact]
    public async Task Every_silo_serves_its_health_and_the_metrics_recorded_on_it()
    {
        var silos = cluster.Silos.Where(s => !s.HasExited).ToArray();
        Assert.NotEmpty(silos);
        using var http = new HttpClient();
        foreach (var silo in silos)
        {
            Assert.Equal("live", await http.GetStringAsync($"http://127.0.0.1:{silo.HttpPort}/health/live"));
            Assert.Equal("ready", await http.GetStringAsync($"http://127.0.0.1:{silo.HttpPort}/health/ready"));
        }

        // A session's ownership is committed to etcd by the silo the session lives on, so only the silos' own
        // metrics can show it: together they count at least one commit per new client.
        async Task<double> CommittedOnSilosAsync()
        {
            var total = 0.0;
            foreach (var silo in silos)
            {
                total += Metrics.Sum(await Metrics.ScrapeAsync(silo.HttpPort), "mqtt_ownership_commits_total", "outcome=\"committed\"");
            }

            return total;
        }

        const int clients = 6;
        var before = await CommittedOnSilosAsync();
        var connected = new List<IMqttClient>();
        try
        {
            for (var i = 0; i < clients; i++)
            {
                connected.Add(await MqttClients.ConnectAsync(cluster.GatewayAMqttPort));
            }

            var after = await CommittedOnSilosAsync();
            Assert.True(after >= before + clients, $"ownership commits on the silos: {before} before, {after} after {clients} connects");
        }
        finally
        {
            foreach (var client in connected)
            {
                client.Dispose();
            }
        }

        // And the runtime's own, per silo.
        var text = await Metrics.ScrapeAsync(silos[0].HttpPort);
        Assert.True(Metrics.Sum(text, "dotnet_gc_collections_total") > 0, text);
        Assert.Contains("dotnet_thread_pool_queue_length_total", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_retained_message_set_on_gateway_A_is_delivered_to_a_later_subscriber_on_gateway_B()
    {
        var topic = NewPrefix() + "/status";
        using var publisher = await MqttClients.ConnectAsync(cluster.GatewayAMqttPort);
        var ack = await publisher.PublishAsync(Message(topic, "up", MqttQualityOfServiceLevel.AtLeastOnce, retain: true));
        Assert.True(ack.IsSuccess, ack.ReasonCode.ToString());

        var inbox = new TopicInbox();
        using var subscriber = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort);
        inbox.Attach(subscriber);
        var delivery = inbox.Expect(topic);
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        var message = await WaitAsync(delivery, TimeSpan.FromSeconds(10), () => "retained message");
        Assert.Equal("up", message.Message.ConvertPayloadToString());
        Assert.True(message.Message.Retain);
    }

    [Fact]
    public async Task The_will_of_a_client_on_gateway_A_whose_connection_drops_reaches_a_subscriber_on_gateway_B()
    {
        var topic = NewPrefix() + "/will";
        var inbox = new TopicInbox();
        using var subscriber = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort);
        inbox.Attach(subscriber);
        var delivery = inbox.Expect(topic);
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);

        var (client, _, _) = await Mqtt5Raw.ConnectAsync(cluster.GatewayAMqttPort, "will-" + Guid.NewGuid().ToString("N"), willTopic: topic, willPayload: "gone");

        // The socket closes without a DISCONNECT: an abnormal end, so the will is published.
        await client.DisposeAsync();
        var will = await WaitAsync(delivery, TimeSpan.FromSeconds(10), () => "will");
        Assert.Equal("gone", will.Message.ConvertPayloadToString());
    }

    [Fact]
    public async Task A_shared_subscription_with_members_on_both_gateways_delivers_each_message_to_exactly_one_member()
    {
        const int count = 200;
        const int fence = 20;
        var prefix = NewPrefix();
        var filter = $"$share/g/{prefix}/jobs/+";
        var deliveries = new ConcurrentQueue<(string Member, string Payload)>();
        var distinct = new ConcurrentDictionary<string, byte>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var memberA = await MqttClients.ConnectAsync(cluster.GatewayAMqttPort);
        using var memberB = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort);
        foreach (var (name, member) in new[] { ("A", memberA), ("B", memberB) })
        {
            member.ApplicationMessageReceivedAsync += e =>
            {
                var payload = e.ApplicationMessage.ConvertPayloadToString();
                deliveries.Enqueue((name, payload));
                if (distinct.TryAdd(payload, 0) && distinct.Count == count + fence)
                {
                    all.TrySetResult();
                }

                return Task.CompletedTask;
            };
            await member.SubscribeAsync(filter, MqttQualityOfServiceLevel.AtLeastOnce);
        }

        using var publisher = await MqttClients.ConnectAsync(cluster.GatewayAMqttPort);
        for (var i = 0; i < count + fence; i++)
        {
            // The last few messages are a fence: once they are in, a duplicate of an earlier one would have come too.
            var payload = i < count ? $"m{i}" : $"fence{i}";
            var ack = await publisher.PublishAsync(Message($"{prefix}/jobs/{i % 4}", payload, MqttQualityOfServiceLevel.AtLeastOnce));
            Assert.True(ack.IsSuccess, $"publish #{i}: {ack.ReasonCode}");
        }

        await WaitAsync(all.Task, TimeSpan.FromSeconds(20), () => $"all shared messages ({distinct.Count} of {count + fence} arrived)");
        var messages = deliveries.Where(d => !d.Payload.StartsWith("fence", StringComparison.Ordinal)).ToList();
        var repeated = messages.GroupBy(d => d.Payload).Where(g => g.Count() > 1).Select(g => $"{g.Key} to {string.Join('+', g.Select(d => d.Member))}").ToList();
        Assert.True(repeated.Count == 0, $"{repeated.Count} messages delivered more than once: {string.Join(", ", repeated.Take(10))}");
        Assert.Equal(count, messages.Count);
        var toA = messages.Count(d => d.Member == "A");
        output.WriteLine($"shared subscription: {toA} to the member on gateway A, {count - toA} to the member on gateway B");
        Assert.True(toA > 0 && toA < count, $"one member got every message: A {toA}, B {count - toA}");
    }

    [Fact]
    public async Task Suback_means_routable_a_message_published_on_gateway_B_right_after_a_suback_on_gateway_A_arrives()
    {
        var prefix = NewPrefix();
        var inbox = new TopicInbox();
        var trials = new ConcurrentBag<Trial>();
        var started = Stopwatch.StartNew();
        await RunWorkersAsync(async worker =>
        {
            using var subscriber = await MqttClients.ConnectAsync(cluster.GatewayAMqttPort);
            using var publisher = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort);
            inbox.Attach(subscriber);
            var waits = new List<Task>();
            for (var n = worker; n < Trials; n += Concurrency)
            {
                var topic = $"{prefix}/t{n}";
                var delivery = inbox.Expect(topic);
                var suback = await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
                var subacked = Stopwatch.GetTimestamp();
                Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS1, suback.Items.Single().ResultCode);
                var ack = await publisher.PublishAsync(Message(topic, "m", MqttQualityOfServiceLevel.AtLeastOnce));
                var trial = new Trial(n, topic, subacked, ack.ReasonCode.ToString());
                trials.Add(trial);
                waits.Add(trial.AwaitAsync(delivery));
            }

            await Task.WhenAll(waits);
        });

        Report("SUBACK on A -> delivered from B", trials, started.Elapsed);
    }

    [Fact]
    public async Task A_retained_message_acknowledged_on_gateway_A_is_served_to_a_subscription_on_gateway_B_made_right_after()
    {
        var prefix = NewPrefix();
        var inbox = new TopicInbox();
        var trials = new ConcurrentBag<Trial>();
        var started = Stopwatch.StartNew();
        await RunWorkersAsync(async worker =>
        {
            using var publisher = await MqttClients.ConnectAsync(cluster.GatewayAMqttPort);
            using var subscriber = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort);
            inbox.Attach(subscriber);
            var waits = new List<Task>();
            for (var n = worker; n < Trials; n += Concurrency)
            {
                var topic = $"{prefix}/t{n}";
                var ack = await publisher.PublishAsync(Message(topic, "r" + n, MqttQualityOfServiceLevel.AtLeastOnce, retain: true));
                var pubacked = Stopwatch.GetTimestamp();
                Assert.True(ack.IsSuccess, $"retained publish {n}: {ack.ReasonCode}");
                var delivery = inbox.Expect(topic);

                // The SUBACK is awaited with the delivery, so the next trial's publish need not wait for it.
                var subscribed = subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
                var trial = new Trial(n, topic, pubacked, ack.ReasonCode.ToString());
                trials.Add(trial);
                waits.Add(subscribed);
                waits.Add(trial.AwaitAsync(delivery, m => m.Retain && m.ConvertPayloadToString() == "r" + trial.Number));
            }

            await Task.WhenAll(waits);
        });

        Report("retained PUBACK on A -> served on B", trials, started.Elapsed);
    }

    private static string NewPrefix() => "cluster/" + Guid.NewGuid().ToString("N")[..12];

    private static MqttApplicationMessage Message(string topic, string payload, MqttQualityOfServiceLevel qos, bool retain = false) =>
        new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(Encoding.UTF8.GetBytes(payload)).WithQualityOfServiceLevel(qos).WithRetainFlag(retain).Build();

    private static Task RunWorkersAsync(Func<int, Task> worker) => Task.WhenAll(Enumerable.Range(0, Concurrency).Select(w => Task.Run(() => worker(w))));

    private async Task<T> WaitAsync<T>(Task<T> task, TimeSpan timeout, Func<string> what)
    {
        try
        {
            return await task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{what()} not received within {timeout}\n{cluster.Logs()}");
        }
    }

    private async Task WaitAsync(Task task, TimeSpan timeout, Func<string> what)
    {
        try
        {
            await task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{what()} not received within {timeout}\n{cluster.Logs()}");
        }
    }

    /// <summary>Writes the latency percentiles, then asserts that no trial missed its message.</summary>
    private void Report(string what, IReadOnlyCollection<Trial> trials, TimeSpan elapsed)
    {
        Assert.Equal(Trials, trials.Count);
        var latencies = trials.Where(t => t.Latency is not null).Select(t => t.Latency!.Value.TotalMilliseconds).Order().ToList();
        double Percentile(double p) => latencies.Count == 0 ? double.NaN : latencies[Math.Min(latencies.Count - 1, (int)(p * latencies.Count))];
        output.WriteLine("cluster start: " + cluster.StartupReport);
        output.WriteLine($"{what}: {Trials} trials, {Concurrency} in flight, {elapsed.TotalSeconds:F1} s; "
            + $"p50 {Percentile(0.50):F1} ms, p99 {Percentile(0.99):F1} ms, max {Percentile(1):F1} ms");

        var misses = trials.Where(t => !t.Delivered).OrderBy(t => t.Number).ToList();
        Assert.True(misses.Count == 0, $"{misses.Count} of {Trials} trials missed their message ({what}); first: "
            + string.Join("; ", misses.Take(10).Select(t => $"#{t.Number} {t.Topic} (ack {t.AckReason}, {t.Failure})")) + "\n" + cluster.Logs());
    }

    /// <summary>One trial: its topic, when its SUBACK/PUBACK arrived, and what came of the delivery it waits for.</summary>
    private sealed class Trial(int number, string topic, long acknowledged, string ackReason)
    {
        public int Number { get; } = number;

        public string Topic { get; } = topic;

        public string AckReason { get; } = ackReason;

        public bool Delivered { get; private set; }

        public string? Failure { get; private set; }

        public TimeSpan? Latency { get; private set; }

        public async Task AwaitAsync(Task<Delivery> delivery, Func<MqttApplicationMessage, bool>? check = null)
        {
            try
            {
                var remaining = TrialDeadline - Stopwatch.GetElapsedTime(acknowledged);
                var d = await delivery.WaitAsync(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero);
                Latency = Stopwatch.GetElapsedTime(acknowledged, d.Timestamp);
                if (check is null || check(d.Message))
                {
                    Delivered = true;
                }
                else
                {
                    Failure = $"unexpected message retain={d.Message.Retain} payload={d.Message.ConvertPayloadToString()}";
                }
            }
            catch (TimeoutException)
            {
                Failure = $"nothing within {TrialDeadline.TotalSeconds} s";
            }
        }
    }

    private readonly record struct Delivery(MqttApplicationMessage Message, long Timestamp);

    /// <summary>The first message per topic received by any attached client, with its arrival time.</summary>
    private sealed class TopicInbox
    {
        private readonly ConcurrentDictionary<string, TaskCompletionSource<Delivery>> _topics = new();

        public void Attach(IMqttClient client) => client.ApplicationMessageReceivedAsync += e =>
        {
            var arrived = Stopwatch.GetTimestamp();
            _topics.GetOrAdd(e.ApplicationMessage.Topic, NewSource).TrySetResult(new Delivery(e.ApplicationMessage, arrived));
            return Task.CompletedTask;
        };

        public Task<Delivery> Expect(string topic) => _topics.GetOrAdd(topic, NewSource).Task;

        private static TaskCompletionSource<Delivery> NewSource(string topic) => new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
