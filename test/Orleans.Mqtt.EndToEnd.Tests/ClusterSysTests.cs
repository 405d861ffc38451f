using System.Globalization;
using System.Threading.Channels;
using MQTTnet;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// The <c>$SYS</c> topics of a cluster of two gateways and three silos (<see cref="ClusterFixture"/>, which publishes
/// them every second): the cluster's totals, published once for the cluster, checked against what every process's
/// own <c>/metrics</c> says.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterSysTests(ClusterFixture cluster, ITestOutputHelper output)
{
    private const string Connected = "$SYS/broker/clients/connected";
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Sys_topics_give_the_cluster_totals_published_once_for_all_gateways_and_silos()
    {
        var run = Guid.NewGuid().ToString("N")[..10];
        var prefix = $"sys/{run}";
        var persistentIds = new[] { $"sys-{run}-a1", $"sys-{run}-a2", $"sys-{run}-b1", $"sys-{run}-b2" };
        var clients = new List<IMqttClient>();
        try
        {
            // Gateway A: four connections, two of them persistent sessions, three subscriptions.
            clients.Add(await ConnectAsync(cluster.GatewayAMqttPort, persistentIds[0], prefix + "/x", prefix + "/y"));
            clients.Add(await ConnectAsync(cluster.GatewayAMqttPort, persistentIds[1], prefix + "/z"));
            clients.Add(await ConnectAsync(cluster.GatewayAMqttPort, null, prefix + "/c"));
            clients.Add(await ConnectAsync(cluster.GatewayAMqttPort, null));

            // Gateway B: one persistent session connected, one offline (a session, not a connection), two retained messages.
            clients.Add(await ConnectAsync(cluster.GatewayBMqttPort, persistentIds[2], prefix + "/#"));
            using (var offline = await ConnectAsync(cluster.GatewayBMqttPort, persistentIds[3], prefix + "/offline"))
            {
                await offline.DisconnectAsync();
            }

            foreach (var name in new[] { "r1", "r2" })
            {
                var ack = await clients[0].PublishAsync(new MqttApplicationMessageBuilder()
                    .WithTopic($"{prefix}/{name}").WithPayload("kept").WithRetainFlag().WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                Assert.True(ack.IsSuccess, ack.ReasonCode.ToString());
            }

            // The $SYS reader on B: A has four connections, B two, so a gateway publishing its own count (4 or 2)
            // would never give the cluster's (6).
            var sys = Channel.CreateUnbounded<(string Topic, string Value)>();
            using var reader = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort);
            reader.ApplicationMessageReceivedAsync += e =>
            {
                sys.Writer.TryWrite((e.ApplicationMessage.Topic, e.ApplicationMessage.ConvertPayloadToString() ?? string.Empty));
                return Task.CompletedTask;
            };
            var before = await GatewayCountersAsync();
            await reader.SubscribeAsync("$SYS/broker/#");

            // Wait, publication by publication, until every figure equals the truth; then the next publications must
            // all still equal it.
            var latest = new Dictionary<string, string>(StringComparer.Ordinal);
            using var timeout = new CancellationTokenSource(SettleTimeout);
            Dictionary<string, long> truth = [];
            List<string> wrong = ["nothing received"];
            while (wrong.Count > 0)
            {
                await ReadUntilConnectedAsync(sys.Reader, latest, timeout.Token, () => $"not settled: {string.Join("; ", wrong)}");
                truth = await TruthAsync();
                wrong = Mismatches(latest, truth);
            }

            output.WriteLine("settled: " + string.Join(", ", truth.Select(kv => $"{kv.Key}={kv.Value}")));
            var seen = new List<string>();
            for (var publication = 0; publication < 3; publication++)
            {
                await ReadUntilConnectedAsync(sys.Reader, latest, timeout.Token, () => "publications stopped");
                seen.Add(latest[Connected]);
                Assert.Empty(Mismatches(latest, truth));
            }

            Assert.All(seen, value => Assert.Equal(truth[Connected].ToString(CultureInfo.InvariantCulture), value));
            Assert.Equal(truth, await TruthAsync());

            // Per silo: three shares that add up to the sessions and subscriptions.
            var siloSessions = latest.Where(kv => IsSiloFigure(kv.Key, "sessions") && kv.Value.Length > 0).ToList();
            Assert.Equal(cluster.Silos.Count(s => !s.HasExited), siloSessions.Count);
            Assert.Equal(truth["$SYS/broker/sessions"], siloSessions.Sum(kv => long.Parse(kv.Value, CultureInfo.InvariantCulture)));
            Assert.Equal(truth["$SYS/broker/subscriptions/count"], latest.Where(kv => IsSiloFigure(kv.Key, "subscriptions/count")).Sum(kv => long.Parse(kv.Value, CultureInfo.InvariantCulture)));

            // The admin API's statistics are the same figures, taken when asked.
            using var api = AdminApiClient.For(cluster, cluster.Gateways[0]);
            var stats = await api.GetAsync("stats");
            var totals = stats.GetProperty("totals");
            Assert.Equal(truth[Connected], totals.GetProperty("connectedClients").GetInt64());
            Assert.Equal(truth["$SYS/broker/sessions"], totals.GetProperty("sessions").GetInt64());
            Assert.Equal(truth["$SYS/broker/subscriptions/count"], totals.GetProperty("subscriptions").GetInt64());
            Assert.Equal(truth["$SYS/broker/messages/received"], totals.GetProperty("traffic").GetProperty("messagesReceived").GetInt64());
            Assert.Equal(truth["$SYS/broker/gateways/count"], stats.GetProperty("gateways").GetArrayLength());
            Assert.Equal(truth["$SYS/broker/silos/count"], stats.GetProperty("silos").GetArrayLength());
            Assert.Equal(truth["$SYS/broker/sessions"], stats.GetProperty("silos").EnumerateArray().Sum(s => s.GetProperty("sessions").GetInt64()));

            // Counters that move while the test reads (PUBLISHes to the reader, PINGREQs): between before and now.
            var after = await GatewayCountersAsync();
            foreach (var (topic, metric) in new[]
            {
                ("$SYS/broker/messages/sent", "mqtt_messages_sent_total"),
                ("$SYS/broker/bytes/received", "mqtt_bytes_received_bytes_total"),
                ("$SYS/broker/bytes/sent", "mqtt_bytes_sent_bytes_total"),
            })
            {
                var value = long.Parse(latest[topic], CultureInfo.InvariantCulture);
                Assert.True(value >= before[metric] && value <= after[metric], $"{topic} = {value}, the gateways' {metric} went from {before[metric]} to {after[metric]}");
            }
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }

            // End the persistent sessions, so that the cluster's later figures do not carry them.
            foreach (var id in persistentIds)
            {
                using var ending = await MqttClients.ConnectAsync(cluster.GatewayAMqttPort, id, cleanStart: true);
                await ending.DisconnectAsync();
            }
        }
    }

    // What the processes themselves count: the gateways' connections and messages, the sessions (SessionsAsync), one
    // silo's replica for the subscriptions (SubscriptionsAsync) and retained messages (every silo holds every retained
    // message), and the running members.
    private async Task<Dictionary<string, long>> TruthAsync()
    {
        var gateways = cluster.Gateways.Where(g => !g.HasExited).ToList();
        var silos = cluster.Silos.Where(s => !s.HasExited).ToList();
        var truth = new Dictionary<string, long>(StringComparer.Ordinal);
        long connected = 0, received = 0, dropped = 0;
        foreach (var gateway in gateways)
        {
            var text = await Metrics.ScrapeAsync(gateway.HttpPort);
            var own = (long)Metrics.Sum(text, "mqtt_connections_active");
            truth[$"$SYS/broker/gateways/{gateway.GatewayId}/clients/connected"] = own;
            connected += own;
            received += (long)Metrics.Sum(text, "mqtt_messages_received_total");
            dropped += (long)Metrics.Sum(text, "mqtt_messages_dropped_total");
        }

        var replica = await Metrics.ScrapeAsync(silos[0].HttpPort);
        truth[Connected] = connected;
        truth["$SYS/broker/messages/received"] = received;
        truth["$SYS/broker/messages/dropped"] = dropped;
        truth["$SYS/broker/sessions"] = await SessionsAsync(gateways[0], replica);
        truth["$SYS/broker/subscriptions/count"] = await SubscriptionsAsync(silos, replica);
        truth["$SYS/broker/retained messages/count"] = (long)Metrics.Sum(replica, "mqtt_retained");
        truth["$SYS/broker/gateways/count"] = gateways.Count;
        truth["$SYS/broker/silos/count"] = silos.Count;
        return truth;
    }

    // With routes unsharded (Mqtt__Routes__Sharding=Off in the environment the silos inherit) one silo's replica holds
    // every session. Sharded by topic (the default), a silo holds only the entries of the clients it is an entry holder
    // of (and of those with filters in its shards or with a wildcard filter), so the count is the admin API's listing
    // of the cluster's clients, which lists each client once, read a page at a time.
    private async Task<long> SessionsAsync(ClusterMember gateway, string replica)
    {
        if (string.Equals(Environment.GetEnvironmentVariable("Mqtt__Routes__Sharding"), "Off", StringComparison.OrdinalIgnoreCase))
        {
            return (long)Metrics.Sum(replica, "mqtt_sessions");
        }

        using var api = AdminApiClient.For(cluster, gateway);
        long count = 0;
        string? after = null;
        do
        {
            var page = await api.GetAsync("clients?limit=1000" + (after is null ? string.Empty : $"&after={Uri.EscapeDataString(after)}"));
            count += page.GetProperty("items").GetArrayLength();
            after = page.GetProperty("next").GetString();
        }
        while (after is not null);

        return count;
    }

    // Routes are sharded by topic (the default): every silo holds the wildcard subscriptions and each exact one is held
    // by Mqtt:Routes:Copies (default 2) of the silos. With Mqtt__Routes__Sharding=Off in the environment the silos
    // inherit, one silo's replica holds every subscription.
    private static async Task<long> SubscriptionsAsync(List<ClusterMember> silos, string replica)
    {
        var all = (long)Metrics.Sum(replica, "mqtt_subscriptions");
        if (string.Equals(Environment.GetEnvironmentVariable("Mqtt__Routes__Sharding"), "Off", StringComparison.OrdinalIgnoreCase))
        {
            return all;
        }

        var copies = int.TryParse(Environment.GetEnvironmentVariable("Mqtt__Routes__Copies"), CultureInfo.InvariantCulture, out var c) ? c : 2;
        long exactHeld = 0;
        foreach (var silo in silos)
        {
            exactHeld += (long)Metrics.Sum(await Metrics.ScrapeAsync(silo.HttpPort), "mqtt_subscriptions_exact");
        }

        return all - (long)Metrics.Sum(replica, "mqtt_subscriptions_exact") + (exactHeld / Math.Min(copies, silos.Count));
    }

    private async Task<Dictionary<string, long>> GatewayCountersAsync()
    {
        var totals = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var gateway in cluster.Gateways.Where(g => !g.HasExited))
        {
            var text = await Metrics.ScrapeAsync(gateway.HttpPort);
            foreach (var metric in new[] { "mqtt_messages_sent_total", "mqtt_bytes_received_bytes_total", "mqtt_bytes_sent_bytes_total" })
            {
                totals[metric] = totals.GetValueOrDefault(metric) + (long)Metrics.Sum(text, metric);
            }
        }

        return totals;
    }

    private static List<string> Mismatches(Dictionary<string, string> latest, Dictionary<string, long> truth) =>
        [.. truth
            .Where(kv => !latest.TryGetValue(kv.Key, out var value) || value != kv.Value.ToString(CultureInfo.InvariantCulture))
            .Select(kv => $"{kv.Key} is {latest.GetValueOrDefault(kv.Key) ?? "missing"}, the processes say {kv.Value}")];

    // Reads $SYS messages into latest until the next publication of the connected clients, one per round.
    private static async Task ReadUntilConnectedAsync(ChannelReader<(string Topic, string Value)> reader, Dictionary<string, string> latest, CancellationToken timeout, Func<string> why)
    {
        while (true)
        {
            (string Topic, string Value) message;
            try
            {
                message = await reader.ReadAsync(timeout);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"$SYS after {SettleTimeout.TotalSeconds} s: {why()}");
                throw;
            }

            latest[message.Topic] = message.Value;
            if (message.Topic == Connected)
            {
                return;
            }
        }
    }

    private static bool IsSiloFigure(string topic, string figure) =>
        topic.StartsWith("$SYS/broker/silos/", StringComparison.Ordinal) && topic.EndsWith("/" + figure, StringComparison.Ordinal)
        && topic.Count(c => c == '/') == 4 + figure.Count(c => c == '/');

    private static async Task<IMqttClient> ConnectAsync(int port, string? persistentId, params string[] filters)
    {
        var client = await MqttClients.ConnectAsync(port, persistentId, cleanStart: persistentId is null, sessionExpiry: persistentId is null ? 0u : 300u);
        foreach (var filter in filters)
        {
            await client.SubscribeAsync(filter, MqttQualityOfServiceLevel.AtLeastOnce);
        }

        return client;
    }
}
