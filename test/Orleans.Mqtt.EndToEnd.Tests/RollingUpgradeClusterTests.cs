using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using MQTTnet;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Ownership.Etcd;
using Xunit.Abstractions;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// A rolling upgrade between two real builds (<c>bench/rolling-upgrade.sh</c>, which builds the last release and sets
/// <see cref="UpgradeFactAttribute.OldBuild"/>): a cluster of the release (etcd, three silos, two gateways) under load,
/// then each silo (highest first) stopped with SIGTERM and started again from this checkout on its data directory, and
/// each gateway replaced by a new one started first, as the chart's StatefulSet and Deployment roll. With
/// <c>UPGRADE_ROLLBACK=1</c> the cluster starts on this checkout and rolls back to the release.
/// The load: persistent QoS 1 and QoS 2 subscribers (connected, slow and offline), publishers on both gateways, a
/// persistent wildcard subscriber, retained messages published before and during the upgrade. Checked at the end:
/// nothing acknowledged is lost (offline sessions' queues included, delivered when they reconnect), QoS 2 arrives once,
/// per-publisher order holds, no session was lost (subscriptions made before the upgrade deliver without being made
/// again), the retained messages are there, each client id has one owner record, and no connected client waited
/// <see cref="MaxStall"/> or more after a replacement.
/// </summary>
public sealed class RollingUpgradeClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan MaxStall = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Progress = TimeSpan.FromSeconds(60);
    private const int RetainedPerBatch = 20;
    private static readonly string? OldBuild = Environment.GetEnvironmentVariable(UpgradeFactAttribute.OldBuild);
    private static readonly bool Rollback = Environment.GetEnvironmentVariable("UPGRADE_ROLLBACK") == "1";
    private static readonly string OldLabel = Environment.GetEnvironmentVariable("UPGRADE_OLD_LABEL") is { Length: > 0 } label ? label : "release";

    // Rolling forward: members start from the release and are replaced by this checkout (a null build); back: the reverse.
    private readonly ClusterFixture _cluster = new() { Build = Rollback ? null : OldBuild };

    public Task InitializeAsync() => _cluster.InitializeAsync();

    public Task DisposeAsync() => _cluster.DisposeAsync();

    [UpgradeFact]
    public async Task A_rolling_upgrade_between_two_builds_loses_nothing_acknowledged_and_keeps_sessions_retained_messages_and_owners()
    {
        var (from, to) = Rollback ? ("this checkout", OldLabel) : (OldLabel, "this checkout");
        var target = Rollback ? OldBuild : null;
        var reportFile = Environment.GetEnvironmentVariable("UPGRADE_REPORT");
        if (reportFile is { Length: > 0 })
        {
            _cluster.LogDirectory = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(reportFile))!, "members");
        }

        await using var run = new ChaosRun(_cluster) { TimelineFile = _cluster.LogDirectory is { } logs ? Path.Combine(logs, "clients.log") : null };
        var retainedTopics = run.TopicPrefix + "-retained";
        var retained = new Dictionary<string, string>();

        // Subscribed before any publish and before the upgrade: it must keep receiving everything through it.
        await using var wildcard = new WildcardSubscriber(_cluster, (run.TopicPrefix + "-wildcard").Replace('/', '-'), run.TopicPrefix + "/+");
        await wildcard.ConnectAsync(port: _cluster.GatewayBMqttPort);
        await PublishRetainedAsync(_cluster.GatewayAMqttPort, $"{retainedTopics}/before", retained);
        await run.StartAsync(connectedSubscribers: 6, offlineSubscribers: 4, publishers: 4, slowSubscribers: 2);
        await run.WaitForProgressAsync(100, Progress);

        var replaced = 0;
        foreach (var silo in _cluster.Silos.Reverse())
        {
            await run.ChangeAsync($"{silo.Name} {from} → {to}", () => _cluster.ReplaceAsync(silo, target));
            await run.WaitForProgressAsync(100, Progress);
            if (++replaced == 1)
            {
                // Silos of both builds: a retained message acknowledged now must reach every silo's replica either way.
                await PublishRetainedAsync(_cluster.GatewayBMqttPort, $"{retainedTopics}/mixed", retained);
            }
        }

        foreach (var gateway in _cluster.Gateways.ToList())
        {
            // The Deployment's surge: the new pod is ready before the old one gets SIGTERM.
            var fresh = await _cluster.AddGatewayAsync(target);
            await run.ChangeAsync($"{gateway.Name} ({from}) stopped, {fresh.Name} ({to}) serves", () => _cluster.StopAsync(gateway));
            await run.WaitForProgressAsync(100, Progress);
        }

        await run.WaitForProgressAsync(200, Progress);
        var report = await run.FinishAsync(TimeSpan.FromSeconds(60));
        var acknowledged = run.AcknowledgedPayloads;
        await wildcard.WaitForAsync(acknowledged, TimeSpan.FromSeconds(30));
        var wildcardMissing = acknowledged.Where(p => !wildcard.Received.ContainsKey(p)).ToList();
        var retainedSeen = await ReadRetainedAsync(Live(_cluster.Gateways).Last().MqttPort, retainedTopics + "/#", retained.Count);
        var retainedWrong = retained.Where(r => !retainedSeen.TryGetValue(r.Key, out var p) || p != r.Value).Select(r => r.Key).ToList();
        var owners = new List<string>();
        var clientIds = run.SubscriberClientIds.Append(wildcard.ClientId).ToList();
        var liveGatewayIds = Live(_cluster.Gateways).Select(g => g.GatewayId).ToHashSet();
        foreach (var clientId in clientIds)
        {
            var records = await ReadOwnersAsync(clientId);
            if (records.Count != 1 || !liveGatewayIds.Contains(records[0].GatewayId))
            {
                owners.Add($"{clientId}: {records.Count} owner records ({string.Join(", ", records.Select(r => r.GatewayId))})");
            }
        }

        await _cluster.SaveLogsAsync();
        var text = new StringBuilder()
            .AppendLine(CultureInfo.InvariantCulture, $"{from} → {to}: silos replaced one at a time (SIGTERM, replacement ready), then gateways (new one ready, old one SIGTERM)")
            .AppendLine()
            .Append(report)
            .AppendLine(CultureInfo.InvariantCulture, $"wildcard subscriber ({wildcard.Filter}, QoS 1, persistent): {acknowledged.Count - wildcardMissing.Count} of {acknowledged.Count} acknowledged messages received, {wildcard.Reconnects} reconnects, {wildcard.SessionsLost} told Session Present 0")
            .AppendLine(CultureInfo.InvariantCulture, $"retained messages: {retained.Count - retainedWrong.Count} of {retained.Count} served to a new subscriber after the upgrade ({RetainedPerBatch} published before it, {RetainedPerBatch} with silos of both builds)")
            .AppendLine(CultureInfo.InvariantCulture, $"owner records in etcd: {clientIds.Count - owners.Count} of {clientIds.Count} client ids have exactly one, on a live gateway")
            .AppendLine($"longest wait of a connected client after any replacement: {KillStall.Format(report.Kills.SelectMany(k => k.All).DefaultIfEmpty().Max(), NeverAfterChange)}")
            .AppendLine("startup: " + _cluster.StartupReport);
        foreach (var line in wildcardMissing.Take(5).Select(m => "wildcard missing " + m).Concat(retainedWrong.Take(5).Select(r => "retained missing or wrong " + r)).Concat(owners.Take(5)))
        {
            text.AppendLine(line);
        }

        output.WriteLine(text.ToString());
        if (reportFile is { Length: > 0 })
        {
            await File.WriteAllTextAsync(reportFile, text.ToString());
        }

        Assert.True(report.Missing.Count == 0, $"acknowledged messages missing:\n{text}");
        Assert.True(report.Qos2Duplicates.Count == 0, $"QoS 2 duplicates:\n{text}");
        Assert.True(report.OrderViolations.Count == 0, $"per-publisher order broken:\n{text}");
        Assert.True(report.SessionsLost.Count == 0 && wildcard.SessionsLost == 0, $"sessions lost (subscribed again):\n{text}");
        Assert.True(wildcardMissing.Count == 0, $"the wildcard subscription missed messages:\n{text}");
        Assert.True(retainedWrong.Count == 0, $"retained messages missing:\n{text}");
        Assert.True(owners.Count == 0, $"owner records wrong:\n{text}");
        foreach (var change in report.Kills)
        {
            var worst = KillStall.Percentile([.. change.All], 1);
            // A "never" (TimeSpan.MaxValue) fails too; subscribers sent nothing after the change are not in the list.
            Assert.True(worst < MaxStall, $"after '{change.Label}' a client waited {KillStall.Format(worst, NeverAfterChange)}:\n{text}");
        }
    }

    // A stall of TimeSpan.MaxValue: a subscriber received none of the messages acknowledged for it after the change, or
    // a publisher got none of its messages sent after it acknowledged.
    private const string NeverAfterChange = "never (a subscriber received none of its messages sent after the change, or a publisher got none acknowledged)";

    private static IEnumerable<ClusterMember> Live(IEnumerable<ClusterMember> members) => members.Where(m => !m.HasExited);

    private static async Task PublishRetainedAsync(int port, string topics, Dictionary<string, string> published)
    {
        using var client = await MqttClients.ConnectAsync(port);
        for (var i = 0; i < RetainedPerBatch; i++)
        {
            var topic = $"{topics}/{i}";
            var payload = $"{topics}:{i}:{Guid.NewGuid():N}";
            var result = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload)
                .WithRetainFlag().WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            Assert.True(result.IsSuccess, $"retained publish to {topic}: {result.ReasonCode}");
            published[topic] = payload;
        }

        await client.DisconnectAsync();
    }

    private static async Task<Dictionary<string, string>> ReadRetainedAsync(int port, string filter, int expected)
    {
        var seen = new ConcurrentDictionary<string, string>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var client = new MqttClientFactory().CreateMqttClient();
        client.ApplicationMessageReceivedAsync += e =>
        {
            if (e.ApplicationMessage.Retain)
            {
                seen[e.ApplicationMessage.Topic] = e.ApplicationMessage.ConvertPayloadToString();
                if (seen.Count >= expected)
                {
                    all.TrySetResult();
                }
            }

            return Task.CompletedTask;
        };
        await client.ConnectAsync(MqttClients.Options(port));
        await client.SubscribeAsync(filter, MqttQualityOfServiceLevel.AtLeastOnce);
        await Task.WhenAny(all.Task, Task.Delay(TimeSpan.FromSeconds(10)));
        await client.DisconnectAsync();
        return new Dictionary<string, string>(seen);
    }

    /// <summary>The client id's owner record (its one key; none when released), read straight from etcd.</summary>
    private async Task<List<SessionOwner>> ReadOwnersAsync(string clientId)
    {
        using var etcd = new EtcdClient(_cluster.EtcdClientUrl, configureChannelOptions: o => o.Credentials = ChannelCredentials.Insecure);
        var key = ByteString.CopyFromUtf8($"{new EtcdOwnershipOptions().KeyPrefix}/{_cluster.ClusterId}/owners/{clientId}");
        var response = await etcd.GetAsync(new RangeRequest { Key = key });
        return [.. response.Kvs.Select(kv => OwnerRecordCodec.Decode(kv.Value.Span))];
    }

    /// <summary>
    /// A persistent QoS 1 subscriber of a wildcard filter that reconnects to any live gateway when its connection goes
    /// and subscribes only once: after a reconnect its session (with the subscription) must still be there.
    /// </summary>
    private sealed class WildcardSubscriber(ClusterFixture cluster, string clientId, string filter) : IAsyncDisposable
    {
        private IMqttClient? _client;
        private volatile bool _disposed;
        private int _reconnects;
        private int _sessionsLost;
        private int _turn;

        public string ClientId => clientId;

        public string Filter => filter;

        public ConcurrentDictionary<string, int> Received { get; } = new();

        public int Reconnects => Volatile.Read(ref _reconnects);

        public int SessionsLost => Volatile.Read(ref _sessionsLost);

        public async Task ConnectAsync(int? port = null)
        {
            var first = _client is null;
            while (!_disposed)
            {
                var client = new MqttClientFactory().CreateMqttClient();
                client.ApplicationMessageReceivedAsync += e =>
                {
                    Received.AddOrUpdate(e.ApplicationMessage.ConvertPayloadToString(), 1, (_, n) => n + 1);
                    return Task.CompletedTask;
                };
                client.DisconnectedAsync += e => OnDisconnectedAsync(client, e);

                // Its client before it connects: a connection that drops right after the CONNACK still reconnects.
                Volatile.Write(ref _client, client);
                try
                {
                    var live = Live(cluster.Gateways).ToList();
                    var gatewayPort = port ?? live[(int)((uint)Interlocked.Increment(ref _turn) % live.Count)].MqttPort;
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                    var result = await client.ConnectAsync(MqttClients.Options(gatewayPort, clientId, cleanStart: first, sessionExpiry: 3600), timeout.Token);
                    if (result.ResultCode == MqttClientConnectResultCode.Success)
                    {
                        if (first || !result.IsSessionPresent)
                        {
                            if (!first)
                            {
                                Interlocked.Increment(ref _sessionsLost);
                            }

                            await client.SubscribeAsync(filter, MqttQualityOfServiceLevel.AtLeastOnce);
                        }

                        return;
                    }
                }
                catch (Exception) when (!first || port is null)
                {
                    // The gateway went or its silos are not reachable yet: the next live gateway, after a pause.
                }

                client.Dispose();
                port = null;
                await Task.Delay(200);
            }
        }

        /// <summary>Waits until every one of <paramref name="payloads"/> arrived, or <paramref name="timeout"/> passed.</summary>
        public async Task WaitForAsync(IReadOnlyCollection<string> payloads, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (DateTime.UtcNow < deadline && payloads.Any(p => !Received.ContainsKey(p)))
            {
                // Deliveries are counted by the handler: polled.
                await Task.Delay(100);
            }
        }

        public ValueTask DisposeAsync()
        {
            _disposed = true;
            _client?.Dispose();
            return ValueTask.CompletedTask;
        }

        private async Task OnDisconnectedAsync(IMqttClient client, MqttClientDisconnectedEventArgs e)
        {
            if (_disposed || !e.ClientWasConnected || !ReferenceEquals(client, Volatile.Read(ref _client)))
            {
                return;
            }

            Interlocked.Increment(ref _reconnects);
            await ConnectAsync();
            client.Dispose();
        }
    }
}
