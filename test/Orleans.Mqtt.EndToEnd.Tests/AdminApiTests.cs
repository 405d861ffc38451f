using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using MQTTnet;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// The admin HTTP API (<c>/api/v1</c> on each gateway's HTTP port) against the real cluster of <see cref="ClusterFixture"/>,
/// whose gateways read a key file holding <see cref="ClusterFixture.AdminApiKey"/>.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class AdminApiTests(ClusterFixture cluster, ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    // Every operation of the API, as the OpenAPI document must list it (method, path template).
    private static readonly (string Method, string Path)[] Operations =
    [
        ("get", "/api/v1/clients"),
        ("get", "/api/v1/clients/{clientId}"),
        ("post", "/api/v1/clients/{clientId}/disconnect"),
        ("post", "/api/v1/clients/{clientId}/subscriptions"),
        ("delete", "/api/v1/clients/{clientId}/subscriptions"),
        ("get", "/api/v1/retained"),
        ("get", "/api/v1/retained/{topic}"),
        ("delete", "/api/v1/retained/{topic}"),
        ("post", "/api/v1/publish"),
        ("get", "/api/v1/nodes"),
        ("get", "/api/v1/health"),
        ("get", "/api/v1/stats"),
    ];

    private ClusterMember GatewayA => cluster.Gateways[0];

    private ClusterMember GatewayB => cluster.Gateways[1];

    [Fact]
    public async Task The_openapi_document_lists_every_endpoint_and_every_endpoint_refuses_calls_without_a_valid_key()
    {
        using var api = AdminApiClient.For(cluster, GatewayA);
        var document = await api.GetAsync("openapi/v1.json");
        var paths = document.GetProperty("paths");
        foreach (var (method, path) in Operations)
        {
            Assert.True(paths.TryGetProperty(path, out var item) && item.TryGetProperty(method, out _), $"{method} {path} missing from the OpenAPI document");
        }

        Assert.DoesNotContain(paths.EnumerateObject(), p => !p.Name.StartsWith("/api/v1/", StringComparison.Ordinal));

        var refusedBefore = Metrics.Sum(await Metrics.ScrapeAsync(GatewayA.HttpPort), "mqtt_admin_refused_total");
        using var anonymous = new AdminApiClient(GatewayA.HttpPort, apiKey: null);
        using var wrongKey = new AdminApiClient(GatewayA.HttpPort, apiKey: "not-" + cluster.AdminApiKey);
        var calls = Operations.Select(o => (o.Method, Path: o.Path.Replace("{clientId}", "c1").Replace("{topic}", "a/b")))
            .Append(("get", "/api/v1/openapi/v1.json"))
            .ToArray();
        foreach (var (method, path) in calls)
        {
            using var missing = await anonymous.SendAsync(new HttpMethod(method.ToUpperInvariant()), path["/api/v1/".Length..]);
            var problem = await AdminApiClient.AssertProblemAsync(missing, HttpStatusCode.Unauthorized);
            Assert.Contains("needs an API key", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.Equal("Bearer", missing.Headers.WwwAuthenticate.Single().Scheme);

            using var wrong = await wrongKey.SendAsync(new HttpMethod(method.ToUpperInvariant()), path["/api/v1/".Length..]);
            await AdminApiClient.AssertProblemAsync(wrong, HttpStatusCode.Unauthorized);
        }

        // The other header works as well as the bearer token.
        using (var viaHeader = await anonymous.SendAsync(HttpMethod.Get, "health", headers: new Dictionary<string, string> { ["X-Api-Key"] = cluster.AdminApiKey }))
        {
            Assert.Equal(HttpStatusCode.OK, viaHeader.StatusCode);
        }

        // Every refusal counted (the exporter may serve a scrape cached for a moment: read until it shows them all).
        var expected = refusedBefore + (2 * calls.Length);
        var deadline = DateTime.UtcNow + Wait;
        double refused;
        while ((refused = Metrics.Sum(await Metrics.ScrapeAsync(GatewayA.HttpPort), "mqtt_admin_refused_total")) < expected && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Equal(expected, refused);
    }

    [Fact]
    public async Task Paging_through_10000_offline_sessions_sees_each_client_exactly_once_in_client_id_order()
    {
        const int count = 10_000;
        var prefix = $"page-{Guid.NewGuid():N}"[..13] + "-";
        var ids = Enumerable.Range(0, count).Select(i => $"{prefix}{i:D5}").ToArray();

        // Persistent MQTT 3.1.1 sessions (no expiry), half through each gateway: CONNECT, CONNACK, DISCONNECT.
        var created = Stopwatch.StartNew();
        await ConnectAndLeaveAsync(ids, persistent: true);
        output.WriteLine($"{count} sessions created in {created.Elapsed.TotalSeconds:F1} s");
        try
        {
            await PageThroughAsync(ids, prefix);
        }
        finally
        {
            // The cluster is shared: a clean-session CONNECT ends each session, so later tests (a silo's graceful stop
            // hands its sessions over) do not carry these.
            var removed = Stopwatch.StartNew();
            await ConnectAndLeaveAsync(ids, persistent: false);
            output.WriteLine($"{count} sessions ended in {removed.Elapsed.TotalSeconds:F1} s");
        }

        // Ended sessions leave the listing: a client's DISCONNECT reaches its session after the client has closed its
        // socket, so the last few may still be listed for a moment.
        using var api = AdminApiClient.For(cluster, GatewayA);
        var deadline = Stopwatch.StartNew();
        var left = (await api.GetAsync($"clients?prefix={prefix}")).GetProperty("items").GetArrayLength();
        while (left > 0 && deadline.Elapsed < TimeSpan.FromSeconds(15))
        {
            await Task.Delay(100);
            left = (await api.GetAsync($"clients?prefix={prefix}")).GetProperty("items").GetArrayLength();
        }

        Assert.Equal(0, left);
    }

    private async Task PageThroughAsync(string[] ids, string prefix)
    {
        var count = ids.Length;

        // Each CONNACK followed the session's routes reaching every silo, so all are listed now.
        using var api = AdminApiClient.For(cluster, GatewayB);
        var seen = new List<string>(count);
        var pages = 0;
        string? after = null;
        var paged = Stopwatch.StartNew();
        do
        {
            var page = await api.GetAsync($"clients?prefix={prefix}&limit=1000" + (after is null ? string.Empty : $"&after={Uri.EscapeDataString(after)}"));
            foreach (var item in page.GetProperty("items").EnumerateArray())
            {
                seen.Add(item.GetProperty("clientId").GetString()!);
                Assert.True(item.GetProperty("persistent").GetBoolean());
            }

            after = page.GetProperty("next").GetString();
            pages++;
        }
        while (after is not null && pages <= (count / 1000) + 1);
        output.WriteLine($"{pages} pages read in {paged.Elapsed.TotalSeconds:F1} s");

        // Every id once, in order; the cursor ends (after the 10 full pages, at most one empty one).
        Assert.Equal(ids, seen);
        Assert.Null(after);

        // A filter that matches nothing gives an empty last page.
        var none = await api.GetAsync($"clients?prefix={prefix}x");
        Assert.Empty(none.GetProperty("items").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, none.GetProperty("next").ValueKind);
    }

    [Fact]
    public async Task Listing_filters_by_gateway_and_shows_who_is_connected_where()
    {
        var prefix = $"gw-{Guid.NewGuid():N}"[..11] + "-";
        using var onA = await MqttClients.ConnectAsync(cluster.GatewayAMqttPort, prefix + "a");
        using var onB = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort, prefix + "b");
        using var api = AdminApiClient.For(cluster, GatewayA);

        var all = await api.GetAsync($"clients?prefix={prefix}");
        Assert.Equal(new[] { prefix + "a", prefix + "b" }, Ids(all));
        var throughB = await api.GetAsync($"clients?prefix={prefix}&gateway={GatewayB.GatewayId}");
        var only = Assert.Single(throughB.GetProperty("items").EnumerateArray());
        Assert.Equal(prefix + "b", only.GetProperty("clientId").GetString());
        Assert.True(only.GetProperty("connected").GetBoolean());
        Assert.False(only.GetProperty("persistent").GetBoolean());

        // Paging by one: the cursor is the last id of the page.
        var first = await api.GetAsync($"clients?prefix={prefix}&limit=1");
        Assert.Equal(new[] { prefix + "a" }, Ids(first));
        Assert.Equal(prefix + "a", first.GetProperty("next").GetString());
        var second = await api.GetAsync($"clients?prefix={prefix}&limit=1&after={prefix}a");
        Assert.Equal(new[] { prefix + "b" }, Ids(second));
    }

    [Fact]
    public async Task Kicking_a_client_connected_on_the_other_gateway_disconnects_it_with_0x98_and_can_discard_its_session()
    {
        var clientId = $"kick-{Guid.NewGuid():N}";
        using var client = new MqttClientFactory().CreateMqttClient();
        var disconnected = new TaskCompletionSource<MqttClientDisconnectedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.DisconnectedAsync += e =>
        {
            disconnected.TrySetResult(e);
            return Task.CompletedTask;
        };
        await client.ConnectAsync(MqttClients.Options(cluster.GatewayBMqttPort, clientId, cleanStart: true, sessionExpiry: 600));
        await client.SubscribeAsync("kick/" + clientId, MqttQualityOfServiceLevel.AtLeastOnce);

        // Through gateway A, for a connection that gateway B holds.
        using var api = AdminApiClient.For(cluster, GatewayA);
        var before = await api.GetAsync($"clients/{clientId}");
        Assert.True(before.GetProperty("connected").GetBoolean());
        Assert.Equal(GatewayB.GatewayId, before.GetProperty("gatewayId").GetString());

        await api.JsonAsync(HttpMethod.Post, $"clients/{clientId}/disconnect", expected: HttpStatusCode.NoContent);
        var e = await disconnected.Task.WaitAsync(Wait);
        Assert.Equal(MqttClientDisconnectReason.AdministrativeAction, e.Reason);

        // The session stays (persistent): offline, with its subscription.
        var after = await api.GetAsync($"clients/{clientId}");
        Assert.False(after.GetProperty("connected").GetBoolean());
        Assert.True(after.GetProperty("persistent").GetBoolean());
        Assert.Equal("kick/" + clientId, after.GetProperty("subscriptions")[0].GetProperty("filter").GetString());

        // Again with discardSession: the session ends.
        await api.JsonAsync(HttpMethod.Post, $"clients/{clientId}/disconnect?discardSession=true", expected: HttpStatusCode.NoContent);
        using var gone = await api.SendAsync(HttpMethod.Get, $"clients/{clientId}");
        await AdminApiClient.AssertProblemAsync(gone, HttpStatusCode.NotFound);
        using var kickGone = await api.SendAsync(HttpMethod.Post, $"clients/{clientId}/disconnect");
        await AdminApiClient.AssertProblemAsync(kickGone, HttpStatusCode.NotFound);

        var audit = $"Admin action kick on {clientId} (session discarded) by key '{ClusterFixture.AdminApiKeyName}'";
        await GatewayA.Process.WaitForLineAsync(l => l.Contains(audit, StringComparison.Ordinal), Wait);
    }

    [Fact]
    public async Task Subscriptions_added_through_the_api_route_a_message_published_through_the_api_and_can_be_removed()
    {
        var clientId = $"subs-{Guid.NewGuid():N}";
        var topic = $"admin/{clientId}/t";
        var received = new ConcurrentQueue<string>();
        var got = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var client = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort, clientId);
        client.ApplicationMessageReceivedAsync += e =>
        {
            received.Enqueue(e.ApplicationMessage.ConvertPayloadToString());
            got.TrySetResult();
            return Task.CompletedTask;
        };

        using var api = AdminApiClient.For(cluster, GatewayA);
        var subscribed = await api.JsonAsync(HttpMethod.Post, $"clients/{clientId}/subscriptions", new { subscriptions = new[] { new { filter = $"admin/{clientId}/#", qos = 1 } } });
        Assert.Equal(1, subscribed.GetProperty("reasonCodes")[0].GetInt32());
        var details = await api.GetAsync($"clients/{clientId}");
        Assert.Equal($"admin/{clientId}/#", Assert.Single(details.GetProperty("subscriptions").EnumerateArray()).GetProperty("filter").GetString());

        // Routable when the call returned: the publish through the API finds the subscriber.
        var published = await api.JsonAsync(HttpMethod.Post, "publish", new { topic, payload = "from the api", qos = 1 });
        Assert.Equal(1, published.GetProperty("sessions").GetInt32());
        await got.Task.WaitAsync(Wait);
        Assert.Equal(new[] { "from the api" }, received);

        var removed = await api.JsonAsync(HttpMethod.Delete, $"clients/{clientId}/subscriptions?filter={Uri.EscapeDataString($"admin/{clientId}/#")}&filter=not/there");
        Assert.Equal(new[] { true, false }, removed.GetProperty("removed").EnumerateArray().Select(b => b.GetBoolean()));
        var none = await api.JsonAsync(HttpMethod.Post, "publish", new { topic, payload = "unrouted", qos = 1 });
        Assert.Equal(0, none.GetProperty("sessions").GetInt32());
    }

    [Fact]
    public async Task A_retained_message_is_listed_read_and_deleted_so_a_new_subscriber_gets_none()
    {
        var root = $"retained-{Guid.NewGuid():N}";
        using (var publisher = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort))
        {
            foreach (var n in new[] { "1", "2", "3" })
            {
                await publisher.PublishAsync(new MqttApplicationMessageBuilder()
                    .WithTopic($"{root}/{n}").WithPayload("value " + n).WithRetainFlag().WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            }
        }

        using var api = AdminApiClient.For(cluster, GatewayA);
        var filter = Uri.EscapeDataString(root + "/#");
        var firstPage = await api.GetAsync($"retained?filter={filter}&limit=2");
        Assert.Equal(new[] { $"{root}/1", $"{root}/2" }, firstPage.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("topic").GetString()));
        var secondPage = await api.GetAsync($"retained?filter={filter}&limit=2&after={Uri.EscapeDataString(firstPage.GetProperty("next").GetString()!)}");
        Assert.Equal(new[] { $"{root}/3" }, secondPage.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("topic").GetString()));
        Assert.Equal(JsonValueKind.Null, secondPage.GetProperty("next").ValueKind);

        var one = await api.GetAsync($"retained/{root}/2");
        Assert.Equal("value 2", one.GetProperty("payloadText").GetString());
        Assert.Equal("value 2", Encoding.UTF8.GetString(Convert.FromBase64String(one.GetProperty("payload").GetString()!)));
        Assert.Equal(1, one.GetProperty("qos").GetInt32());

        await api.JsonAsync(HttpMethod.Delete, $"retained/{root}/2", expected: HttpStatusCode.NoContent);
        using (var gone = await api.SendAsync(HttpMethod.Get, $"retained/{root}/2"))
        {
            await AdminApiClient.AssertProblemAsync(gone, HttpStatusCode.NotFound);
        }

        // Deleted on every silo before the call returned: a subscriber on the other gateway gets 1 and 3 only.
        var retained = new ConcurrentQueue<string>();
        var gotTwo = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscriber = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort);
        subscriber.ApplicationMessageReceivedAsync += e =>
        {
            retained.Enqueue(e.ApplicationMessage.Topic);
            if (retained.Count == 2)
            {
                gotTwo.TrySetResult();
            }

            return Task.CompletedTask;
        };
        await subscriber.SubscribeAsync(root + "/#");
        await gotTwo.Task.WaitAsync(Wait);

        // A fence after the retained messages: anything retained on topic 2 would have come before it.
        var fenced = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        subscriber.ApplicationMessageReceivedAsync += e =>
        {
            if (e.ApplicationMessage.Topic == root + "/fence")
            {
                fenced.TrySetResult();
            }

            return Task.CompletedTask;
        };
        await api.JsonAsync(HttpMethod.Post, "publish", new { topic = root + "/fence", payload = "x" });
        await fenced.Task.WaitAsync(Wait);
        Assert.Equal(new[] { $"{root}/1", $"{root}/3" }, retained.Where(t => !t.EndsWith("/fence", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        await GatewayA.Process.WaitForLineAsync(l => l.Contains($"Admin action retained_delete on {root}/2 ", StringComparison.Ordinal), Wait);
    }

    [Fact]
    public async Task Bad_requests_and_unknown_names_are_answered_with_problem_details()
    {
        using var api = AdminApiClient.For(cluster, GatewayA);
        (HttpMethod Method, string Path, object? Body, HttpStatusCode Status)[] cases =
        [
            (HttpMethod.Get, $"clients/no-such-{Guid.NewGuid():N}", null, HttpStatusCode.NotFound),
            (HttpMethod.Post, $"clients/no-such-{Guid.NewGuid():N}/subscriptions", new { subscriptions = new[] { new { filter = "a", qos = 0 } } }, HttpStatusCode.NotFound),
            (HttpMethod.Post, "clients/any/subscriptions", new { subscriptions = new[] { new { filter = "a/#/b", qos = 0 } } }, HttpStatusCode.BadRequest),
            (HttpMethod.Delete, "clients/any/subscriptions", null, HttpStatusCode.BadRequest),
            (HttpMethod.Get, "clients?limit=0", null, HttpStatusCode.BadRequest),
            (HttpMethod.Get, "retained?filter=a/%23/b", null, HttpStatusCode.BadRequest),
            (HttpMethod.Get, $"retained/none/{Guid.NewGuid():N}", null, HttpStatusCode.NotFound),
            (HttpMethod.Delete, "retained/a/+", null, HttpStatusCode.BadRequest),
            (HttpMethod.Post, "publish", new { topic = "a/#", payload = "x" }, HttpStatusCode.BadRequest),
            (HttpMethod.Post, "publish", new { topic = "a", qos = 3 }, HttpStatusCode.BadRequest),
            (HttpMethod.Post, "publish", new { topic = "a", payloadBase64 = "not base64!" }, HttpStatusCode.BadRequest),
            (HttpMethod.Get, "no-such-resource", null, HttpStatusCode.NotFound),
            (HttpMethod.Post, "publish", "not an object", HttpStatusCode.BadRequest),
            (HttpMethod.Get, "clients?limit=many", null, HttpStatusCode.BadRequest),
        ];
        foreach (var (method, path, body, status) in cases)
        {
            using var response = await api.SendAsync(method, path, body);
            var problem = await AdminApiClient.AssertProblemAsync(response, status);
            output.WriteLine($"{method} {path}: {problem.GetProperty("detail").GetString()}");
        }
    }

    [Fact]
    public async Task Nodes_and_health_list_the_silos_and_gateways()
    {
        using var api = AdminApiClient.For(cluster, GatewayB);
        var nodes = await api.GetAsync("nodes");
        var active = nodes.GetProperty("silos").EnumerateArray().Count(s => s.GetProperty("status").GetString() == "Active");
        Assert.Equal(cluster.Silos.Count(s => !s.HasExited), active);
        var gateways = nodes.GetProperty("gateways").EnumerateArray().Where(g => g.GetProperty("alive").GetBoolean()).Select(g => g.GetProperty("gatewayId").GetString()!).ToHashSet();
        Assert.Superset(cluster.Gateways.Where(g => !g.HasExited).Select(g => g.GatewayId).ToHashSet(), gateways);
        Assert.Equal(GatewayB.GatewayId, nodes.GetProperty("thisGateway").GetProperty("gatewayId").GetString());

        var health = await api.GetAsync("health");
        Assert.Equal(active, health.GetProperty("activeSilos").GetInt32());
        Assert.True(health.GetProperty("thisGatewayReady").GetBoolean());
        Assert.NotEqual("unavailable", health.GetProperty("status").GetString());
    }

    private Task ConnectAndLeaveAsync(string[] ids, bool persistent) =>
        Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (id, _) =>
        {
            var port = id[^1] % 2 == 0 ? cluster.GatewayAMqttPort : cluster.GatewayBMqttPort;
            await using var client = await RawMqttClient.ConnectAsync(port);
            await client.SendAsync(RawMqttClient.Connect(4, id, cleanSession: !persistent));
            var (header, body) = await client.ReadPacketAsync() ?? throw new InvalidOperationException($"{id}: closed before CONNACK");
            Assert.True(header >> 4 == 2 && body[1] == 0, $"{id}: CONNACK {body[1]}");
            await client.SendAsync(RawMqttClient.Disconnect());
        });

    private static string[] Ids(JsonElement page) =>
        [.. page.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("clientId").GetString()!)];
}
