using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Orleans.Mqtt.Chart.Tests;

/// <summary>
/// The chart drives the real hosts: the processes started from its rendered silo and gateway containers form a cluster
/// and carry MQTT through both gateways; and the Grafana dashboard queries only metrics those processes export.
/// </summary>
public sealed partial class ChartClusterTests(ChartCluster cluster) : IClassFixture<ChartCluster>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Fact]
    public void The_processes_get_only_documented_configuration_keys()
    {
        // The hosts ignore keys they do not know: a misspelt variable would start fine and do nothing.
        foreach (var pod in cluster.Silos.Concat(cluster.Gateways))
        {
            Assert.Empty(ConfigurationKeys.Unknown(pod.Environment.Keys));
        }
    }

    [Fact]
    public async Task The_silos_form_one_cluster_and_MQTT_works_through_both_gateways()
    {
        // Every silo started is an active member in etcd, under the pod name the chart gives it.
        var members = await EtcdMembersAsync();
        foreach (var silo in cluster.Silos.Where(p => !p.HasExited))
        {
            Assert.Contains(members, m => m.Contains(silo.Name, StringComparison.Ordinal) && m.Contains("Active", StringComparison.Ordinal));
        }

        Assert.Equal(cluster.Silos.Count(p => !p.HasExited), members.Count(m => m.Contains("Active", StringComparison.Ordinal)));

        var (a, b) = (cluster.Gateways[0], cluster.Gateways[1]);
        await PublishAcrossAsync(subscribeAt: a, publishAt: b, webSocket: false);
        await PublishAcrossAsync(subscribeAt: b, publishAt: a, webSocket: true);
    }

    [Fact]
    public async Task The_helm_test_pod_passes_against_the_gateways()
    {
        // The hook pod's own command and environment, run here (mosquitto-clients is installed for the end-to-end
        // tests). The one stand-in: the Service's DNS name resolves to a gateway pod, as kube-proxy would route it.
        var pod = cluster.Manifests.Single<k8s.Models.V1Pod>();
        Assert.Equal("test", pod.Metadata.Annotations["helm.sh/hook"]);
        var container = Assert.Single(pod.Spec.Containers);
        var environment = Pod.ResolveEnvironment(container, pod.Metadata.Name, "127.0.0.99", cluster.Manifests);
        Assert.Equal($"mqtt-orleans-mqtt-gateway.{Helm.Namespace}.svc.cluster.local", environment["MQTT_HOST"]);
        environment["MQTT_HOST"] = cluster.Gateways[1].IP;
        Assert.Equal(cluster.Gateways[1].Port("mqtt").ToString(System.Globalization.CultureInfo.InvariantCulture), environment["MQTT_PORT"]);

        var temp = Directory.CreateTempSubdirectory("orleans-mqtt-helm-test-");
        try
        {
            var info = new System.Diagnostics.ProcessStartInfo(container.Command[0], container.Command.Skip(1).Concat(container.Args))
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            info.Environment.Clear();
            info.Environment["PATH"] = System.Environment.GetEnvironmentVariable("PATH");
            info.Environment["TMPDIR"] = temp.FullName;
            foreach (var (key, value) in environment)
            {
                info.Environment[key] = value;
            }

            using var process = System.Diagnostics.Process.Start(info)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(40));
            Assert.True(process.ExitCode == 0, $"helm test pod exited {process.ExitCode}:\n{await output}{await error}");
            Assert.Contains("received through", await output, StringComparison.Ordinal);
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_silo_scaled_away_stops_cleanly_within_its_grace_period_and_the_cluster_keeps_serving()
    {
        // kubectl scale up, a persistent session, then scale down again: the last pod gets SIGTERM.
        var silo = await cluster.ScaleUpSilosAsync();
        using (var client = await ConnectAsync(cluster.Gateways[0], webSocket: false, "chart-kept-" + Guid.NewGuid().ToString("N")[..8], cleanSession: false))
        {
            await client.SubscribeAsync("chart/kept", MqttQualityOfServiceLevel.AtLeastOnce);
            await client.DisconnectAsync();
        }

        var grace = TimeSpan.FromSeconds(cluster.SiloSet.Spec.Template.Spec.TerminationGracePeriodSeconds ?? 30);
        var exitCode = await silo.TerminateAsync(grace);
        Assert.True(exitCode == 0, $"{silo.Name} exit code {exitCode?.ToString() ?? "none: still running after the grace period"}:\n{silo.Log()}");
        await PublishAcrossAsync(subscribeAt: cluster.Gateways[1], publishAt: cluster.Gateways[0], webSocket: false);
    }

    [Fact]
    public async Task The_dashboard_queries_only_metrics_the_silos_and_gateways_export()
    {
        var dashboard = Path.Combine(Helm.ChartDirectory, "dashboards", "orleans-mqtt.json");
        var used = DashboardMetrics(File.ReadAllText(dashboard));
        Assert.NotEmpty(used);

        // Counters appear once something is counted: provoke what the panels show by reason, and a silo joining a
        // running cluster (its route replica catches up), then look for every name.
        var gateway = cluster.Gateways[0];
        await PublishAcrossAsync(subscribeAt: gateway, publishAt: cluster.Gateways[1], webSocket: false);
        await RefusedConnectAsync(gateway);
        await ServerClosedConnectionAsync(gateway);
        await OfflineQos0DropAsync(gateway);
        await cluster.ScaleUpSilosAsync();

        var deadline = DateTime.UtcNow + Timeout;
        List<string> missing;
        while (true)
        {
            var exported = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
            foreach (var pod in cluster.Silos.Concat(cluster.Gateways).Where(p => !p.HasExited))
            {
                AddExported(await pod.ScrapeAsync(), exported);
            }

            missing = [.. Missing(used, exported)];
            if (missing.Count == 0 || DateTime.UtcNow > deadline)
            {
                break;
            }

            // Metrics recorded asynchronously (a drop counted on the silo) show in a later scrape.
            await Task.Delay(250);
        }

        Assert.True(missing.Count == 0, $"the dashboard queries what no process exports: {string.Join(", ", missing.Distinct().Order())}");
    }

    // Series Prometheus makes itself for every target it scrapes.
    private static readonly string[] PrometheusOwn = ["up"];

    // Labels Prometheus adds to every series it scrapes, and the bucket bound of histograms.
    private static readonly string[] ScrapeLabels = ["instance", "job", "le"];

    /// <summary>
    /// Each query of the dashboard as the metric names it selects (identifiers followed by a label matcher) and the
    /// labels it groups by (<c>by (reason)</c>).
    /// </summary>
    internal static List<(string[] Metrics, string[] Labels)> DashboardMetrics(string json)
    {
        var queries = new List<(string[] Metrics, string[] Labels)>();
        using var document = JsonDocument.Parse(json);
        foreach (var expr in Expressions(document.RootElement))
        {
            var metrics = MetricSelector().Matches(expr).Select(m => m.Groups[1].Value).Distinct().ToArray();
            Assert.True(metrics.Length > 0, $"no metric in query: {expr}");
            var labels = GroupBy().Matches(expr)
                .SelectMany(m => m.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                .Distinct().ToArray();
            queries.Add((metrics, labels));
        }

        return queries;
    }

    private static IEnumerable<string> Missing(List<(string[] Metrics, string[] Labels)> queries, Dictionary<string, HashSet<string>> exported)
    {
        foreach (var (metrics, labels) in queries)
        {
            foreach (var metric in metrics.Where(m => !exported.ContainsKey(m) && !PrometheusOwn.Contains(m)))
            {
                yield return metric;
            }

            foreach (var label in labels.Where(l => !ScrapeLabels.Contains(l)))
            {
                if (!metrics.Any(m => exported.TryGetValue(m, out var present) && present.Contains(label)))
                {
                    yield return $"label {label} of {string.Join("/", metrics)}";
                }
            }
        }
    }

    private static IEnumerable<string> Expressions(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    if (property.Name == "expr" && property.Value.ValueKind == JsonValueKind.String)
                    {
                        yield return property.Value.GetString()!;
                    }
                    else if (property.Name == "query" && property.Value.ValueKind == JsonValueKind.Object
                        && property.Value.TryGetProperty("query", out var variable))
                    {
                        // A template variable's query, e.g. label_values(metric, job).
                        yield return LabelValues().Replace(variable.GetString()!, "$1{");
                    }
                    else
                    {
                        foreach (var nested in Expressions(property.Value))
                        {
                            yield return nested;
                        }
                    }
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    foreach (var nested in Expressions(item))
                    {
                        yield return nested;
                    }
                }

                break;
        }
    }

    // Prometheus text: each series line is the name, optionally {label="value",…}, then the value.
    private static void AddExported(string text, Dictionary<string, HashSet<string>> exported)
    {
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var end = line.IndexOfAny(['{', ' ']);
            var name = end < 0 ? line : line[..end];
            if (!exported.TryGetValue(name, out var labels))
            {
                exported[name] = labels = new HashSet<string>(StringComparer.Ordinal);
            }

            foreach (Match label in SeriesLabel().Matches(line[Math.Max(end, 0)..]))
            {
                labels.Add(label.Groups[1].Value);
            }
        }
    }

    private async Task<List<string>> EtcdMembersAsync()
    {
        // etcd's JSON gateway: every key under {KeyPrefix}/{clusterId}/members/ (keys and values base64).
        var clusterId = cluster.Manifests.ConfigMap("mqtt-orleans-mqtt-config").Data["Orleans__ClusterId"];
        var prefix = $"/orleans-mqtt/{clusterId}/members/";
        var end = prefix[..^1] + (char)(prefix[^1] + 1);
        using var http = new HttpClient();
        using var response = await http.PostAsJsonAsync(cluster.EtcdUrl + "/v3/kv/range", new Dictionary<string, string>
        {
            ["key"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(prefix)),
            ["range_end"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(end)),
        });
        response.EnsureSuccessStatusCode();
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return body.RootElement.TryGetProperty("kvs", out var kvs)
            ? [.. kvs.EnumerateArray().Select(kv => Encoding.UTF8.GetString(Convert.FromBase64String(kv.GetProperty("value").GetString()!)))]
            : [];
    }

    private async Task PublishAcrossAsync(Pod subscribeAt, Pod publishAt, bool webSocket)
    {
        var topic = $"chart/{Guid.NewGuid():N}";
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscriber = await ConnectAsync(subscribeAt, webSocket);
        subscriber.ApplicationMessageReceivedAsync += e =>
        {
            received.TrySetResult(e.ApplicationMessage.ConvertPayloadToString());
            return Task.CompletedTask;
        };
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        using var publisher = await ConnectAsync(publishAt, webSocket: false);
        await publisher.PublishStringAsync(topic, "through " + publishAt.Name, MqttQualityOfServiceLevel.AtLeastOnce);
        try
        {
            Assert.Equal("through " + publishAt.Name, await received.Task.WaitAsync(Timeout));
        }
        catch (TimeoutException)
        {
            Assert.Fail($"published at {publishAt.Name}, not received at {subscribeAt.Name}:\n{cluster.Logs()}");
        }
    }

    private static async Task<IMqttClient> ConnectAsync(Pod gateway, bool webSocket, string? clientId = null, bool cleanSession = true)
    {
        var builder = new MqttClientOptionsBuilder()
            .WithProtocolVersion(MqttProtocolVersion.V311)
            .WithClientId(clientId ?? "chart-" + Guid.NewGuid().ToString("N")[..12])
            .WithCleanSession(cleanSession);
        builder = webSocket
            ? builder.WithWebSocketServer(o => o.WithUri($"ws://{gateway.IP}:{gateway.Port("websocket")}{gateway.Environment["Mqtt__WebSocket__Path"]}"))
            : builder.WithTcpServer(gateway.IP, gateway.Port("mqtt"));
        var client = new MqttClientFactory().CreateMqttClient();
        await client.ConnectAsync(builder.Build());
        return client;
    }

    // MQTT 3.1.1 CONNECT with an empty client id and clean session 0: refused with CONNACK 2 (identifier rejected).
    private static async Task RefusedConnectAsync(Pod gateway)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(gateway.IP, gateway.Port("mqtt"));
        var stream = tcp.GetStream();
        await stream.WriteAsync(new byte[] { 0x10, 12, 0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 4, 0x00, 0, 60, 0, 0 });
        var connack = new byte[4];
        await stream.ReadExactlyAsync(connack).AsTask().WaitAsync(Timeout);
        Assert.Equal(new byte[] { 0x20, 2, 0, 2 }, connack);
    }

    // A connected client that sends a reserved packet type (0): the server closes the connection.
    private static async Task ServerClosedConnectionAsync(Pod gateway)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(gateway.IP, gateway.Port("mqtt"));
        var stream = tcp.GetStream();
        var id = Encoding.ASCII.GetBytes("chart-bad-input");
        var connect = new List<byte> { 0x10, (byte)(12 + id.Length), 0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 4, 0x02, 0, 60, 0, (byte)id.Length };
        connect.AddRange(id);
        await stream.WriteAsync(connect.ToArray());
        var connack = new byte[4];
        await stream.ReadExactlyAsync(connack).AsTask().WaitAsync(Timeout);
        Assert.Equal(new byte[] { 0x20, 2, 0, 0 }, connack);
        await stream.WriteAsync(new byte[] { 0x00, 0x00 });
        var rest = new byte[16];
        Assert.Equal(0, await stream.ReadAsync(rest).AsTask().WaitAsync(Timeout));
    }

    // A persistent session subscribed at QoS 1 and offline: a QoS 0 message for it is dropped (offline_qos0).
    private static async Task OfflineQos0DropAsync(Pod gateway)
    {
        var clientId = "chart-offline-" + Guid.NewGuid().ToString("N")[..8];
        var topic = $"chart/offline/{clientId}";
        using (var sleeper = await ConnectAsync(gateway, webSocket: false, clientId, cleanSession: false))
        {
            await sleeper.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
            await sleeper.DisconnectAsync();
        }

        using var publisher = await ConnectAsync(gateway, webSocket: false);
        await publisher.PublishStringAsync(topic, "for nobody", MqttQualityOfServiceLevel.AtMostOnce);
        await publisher.DisconnectAsync();
    }

    [GeneratedRegex(@"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{")]
    private static partial Regex MetricSelector();

    [GeneratedRegex(@"\bby \(([^)]*)\)")]
    private static partial Regex GroupBy();

    [GeneratedRegex(@"([a-zA-Z_][a-zA-Z0-9_]*)=""")]
    private static partial Regex SeriesLabel();

    [GeneratedRegex(@"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,.*\)")]
    private static partial Regex LabelValues();
}
