using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using MQTTnet;
using MQTTnet.Protocol;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>
/// Clients of a cluster through kills: persistent QoS 1 and QoS 2 subscribers (connected ones reconnect to any live
/// gateway when theirs goes, offline ones come back at the end) and publishers on every gateway that publish
/// QoS 1/2 to them in sequence and re-send whatever was not acknowledged. It records every acknowledged publish
/// (PUBACK or PUBCOMP received) and every delivery, and reports what is missing, QoS 2 duplicates, per-publisher order
/// violations and, per kill, how long clients waited.
/// </summary>
public sealed class ChaosRun : IAsyncDisposable
{
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromSeconds(10);
    private const int SparseEvery = 25;
    private readonly ClusterFixture _cluster;
    private readonly string _prefix = "chaos/" + Guid.NewGuid().ToString("N")[..8];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<Subscriber> _subscribers = [];
    private readonly ConcurrentDictionary<string, Published> _acknowledged = new();
    private readonly ConcurrentQueue<Kill> _kills = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _publishers = [];
    private readonly ConcurrentDictionary<string, int> _refusedConnects = new();
    private readonly ConcurrentQueue<string> _timeline = new();
    private int _gatewayTurn;

    public ChaosRun(ClusterFixture cluster)
    {
        _cluster = cluster;
    }

    /// <summary>Messages acknowledged to publishers so far.</summary>
    public int Acknowledged => _acknowledged.Count;

    /// <summary>
    /// A file that gets, at the end, what the clients saw with wall-clock (UTC) times to lay beside the members' logs:
    /// kills, disconnects, connect attempts, failed publishes, and per kill each client's stall. Null: not written.
    /// </summary>
    public string? TimelineFile { get; set; }

    /// <summary>
    /// Connects the subscribers (alternating gateways) and starts the publishers. Slow subscribers are connected ones
    /// with Receive Maximum 1 that acknowledge each message 150 ms late.
    /// </summary>
    public async Task StartAsync(int connectedSubscribers, int offlineSubscribers, int publishers, int slowSubscribers = 0)
    {
        var total = connectedSubscribers + slowSubscribers + offlineSubscribers;
        for (var i = 0; i < total; i++)
        {
            var kind = i < connectedSubscribers ? SubscriberKind.Connected : i < connectedSubscribers + slowSubscribers ? SubscriberKind.Slow : SubscriberKind.Offline;
            var subscriber = new Subscriber(this, i, qos: i % 2 == 0 ? 1 : 2, kind);
            await subscriber.ConnectAsync();
            if (subscriber.Kind == SubscriberKind.Offline)
            {
                await subscriber.Client.DisconnectAsync();
            }

            _subscribers.Add(subscriber);
        }

        for (var p = 0; p < publishers; p++)
        {
            var publisher = p;
            _publishers.Add(Task.Run(() => PublishAsync(publisher)));
        }
    }

    /// <summary>
    /// Kills <paramref name="member"/> with SIGKILL and notes the time under <paramref name="label"/>. For a silo, the
    /// report gives when the silos running now saw it declared dead (<see cref="KillStall.DeclaredDead"/>).
    /// </summary>
    public async Task KillAsync(ClusterMember member, string label)
    {
        // The processes, not the members: a survivor restarted later keeps the lines of the process that saw the death.
        var survivors = member.IsGateway ? [] : _cluster.Silos.Where(s => s != member && !s.HasExited).Select(s => s.Process).ToList();
        _kills.Enqueue(new Kill(label, _clock.Elapsed, DateTime.UtcNow)
        {
            Cause = member.IsGateway ? StallCause.GatewayKilled : StallCause.SiloKilled,
            SiloPort = member.IsGateway ? null : member.SiloPort,
            Survivors = survivors,
        });
        Note($"kill {member.Name} ({label})");
        await _cluster.KillAsync(member);
    }

    /// <summary>
    /// Runs a planned change of the cluster (a member stopped and replaced, say) and notes its start under
    /// <paramref name="label"/>: the report gives the stalls and losses after it as after a kill.
    /// </summary>
    public async Task ChangeAsync(string label, Func<Task> change)
    {
        _kills.Enqueue(new Kill(label, _clock.Elapsed, DateTime.UtcNow));
        Note(label);
        await change();
    }

    /// <summary>The topic prefix of this run: every message goes to <c>{prefix}/s{subscriber}</c>.</summary>
    public string TopicPrefix => _prefix;

    /// <summary>The payloads acknowledged to publishers so far.</summary>
    public IReadOnlyCollection<string> AcknowledgedPayloads => [.. _acknowledged.Keys];

    /// <summary>The client ids of the subscribers (connected, slow and offline).</summary>
    public IReadOnlyList<string> SubscriberClientIds => [.. _subscribers.Select(s => $"{_prefix}-sub-{s.Index}".Replace('/', '-'))];

    /// <summary>Waits until <paramref name="count"/> more messages were acknowledged to publishers.</summary>
    public async Task WaitForProgressAsync(int count, TimeSpan timeout)
    {
        var target = Acknowledged + count;
        var deadline = _clock.Elapsed + timeout;
        while (Acknowledged < target)
        {
            if (_clock.Elapsed > deadline)
            {
                throw new TimeoutException($"{Acknowledged} of {target} messages acknowledged after {timeout}\n{_cluster.Logs()}");
            }

            // Progress is the publishers' acknowledgements, which have no event to wait on: polled.
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// Stops the publishers, brings the offline subscribers back and waits up to <paramref name="drain"/> for every
    /// acknowledged message to arrive; returns the result.
    /// </summary>
    public async Task<ChaosReport> FinishAsync(TimeSpan drain)
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_publishers);
        foreach (var s in _subscribers.Where(s => s.Kind == SubscriberKind.Offline))
        {
            await s.ConnectAsync();
        }

        var deadline = _clock.Elapsed + drain;
        while (_clock.Elapsed < deadline && Missing().Any())
        {
            // Deliveries are counted by the clients' handlers: polled.
            await Task.Delay(100);
        }

        var report = Report(await DropsAsync());
        if (TimelineFile is { } file)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
            await File.WriteAllLinesAsync(file, [.. _timeline, .. StallsByClient()]);
        }

        return report;
    }

    private void Note(string text)
    {
        if (TimelineFile is not null)
        {
            _timeline.Enqueue(string.Create(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fff} {text}"));
        }
    }

    // Per kill, every client's stall by name: which one waited longest, to look up in the timeline and the members' logs.
    private IEnumerable<string> StallsByClient()
    {
        foreach (var kill in _kills.OrderBy(k => k.At))
        {
            var subscribers = _subscribers.Where(s => s.Kind != SubscriberKind.Offline)
                .Select(s => (Name: $"s{s.Index}{(s.Kind == SubscriberKind.Slow ? " (slow)" : string.Empty)}", Stall: SubscriberStall(s, kill.At), Never: KillStall.NeverReceived));
            var publishers = _acknowledged.GroupBy(a => a.Key.Split(':')[0])
                .Select(g => (Name: "pub-" + g.Key, Stall: (TimeSpan?)PublisherStall(g, kill.At), Never: KillStall.NeverAcknowledged));
            var all = subscribers.Concat(publishers).OrderByDescending(c => c.Stall ?? TimeSpan.MinValue)
                .Select(c => $"{c.Name} {(c.Stall is { } stall ? KillStall.Format(stall, c.Never) : KillStall.NothingSent)}");
            var declared = Declaration(kill) is { } d ? string.Create(CultureInfo.InvariantCulture, $" (declared dead {d.First.TotalSeconds:F2}-{d.Last.TotalSeconds:F2} s after it)") : string.Empty;
            yield return string.Create(CultureInfo.InvariantCulture, $"{kill.UtcAt:yyyy-MM-ddTHH:mm:ss.fff} stalls after '{kill.Label}'{declared}: {string.Join(", ", all)}");
        }
    }

    // The brokers' own count of messages they dropped by design (mqtt.messages.dropped, by reason), summed over the
    // members alive at the end (a killed member's counters went with it).
    private async Task<IReadOnlyDictionary<string, long>> DropsAsync()
    {
        var drops = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var member in _cluster.Silos.Concat(_cluster.Gateways).Where(m => !m.HasExited))
        {
            string text;
            try
            {
                text = await Metrics.ScrapeAsync(member.HttpPort);
            }
            catch (HttpRequestException)
            {
                continue;
            }

            foreach (var line in text.Split('\n'))
            {
                const string Name = "mqtt_messages_dropped_total{";
                var at = line.IndexOf("reason=\"", StringComparison.Ordinal);
                if (!line.StartsWith(Name, StringComparison.Ordinal) || at < 0)
                {
                    continue;
                }

                var reason = line[(at + 8)..line.IndexOf('"', at + 8)];
                drops[reason] = drops.GetValueOrDefault(reason) + (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return drops;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_publishers);
        foreach (var s in _subscribers)
        {
            s.Dispose();
        }

        _stop.Dispose();
    }

    private string Topic(int subscriber) => $"{_prefix}/s{subscriber}";

    private int NextGatewayPort()
    {
        var live = _cluster.Gateways.Where(g => !g.HasExited).ToList();
        return live.Count == 0 ? _cluster.Gateways[0].MqttPort : live[(int)((uint)Interlocked.Increment(ref _gatewayTurn) % live.Count)].MqttPort;
    }

    // Connects a new client, retrying on the next live gateway until one accepts it. MQTTnet reports a CONNACK with an
    // error reason code (for example 0x88 Server unavailable while a killed silo's sessions fail over) as a result, not
    // an exception: such a client is not connected and is retried like a failed connection. configure runs on each
    // new client before it connects, so its event handlers see everything that happens to its connection.
    private async Task<(IMqttClient Client, bool SessionPresent)> ConnectAsync(string clientId, bool persistent, Action<IMqttClient>? configure, int? port = null, ushort receiveMaximum = 0)
    {
        while (true)
        {
            var client = new MqttClientFactory().CreateMqttClient();
            configure?.Invoke(client);
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                var gatewayPort = port ?? NextGatewayPort();
                var options = MqttClients.Options(gatewayPort, clientId, cleanStart: !persistent, sessionExpiry: persistent ? 3600u : 0);
                options.ReceiveMaximum = receiveMaximum;
                var started = _clock.Elapsed;
                var result = await client.ConnectAsync(options, timeout.Token);
                Note(string.Create(CultureInfo.InvariantCulture, $"{clientId} connect via port {gatewayPort}: {result.ResultCode} in {(_clock.Elapsed - started).TotalSeconds:F2} s"));
                if (result.ResultCode == MqttClientConnectResultCode.Success)
                {
                    return (client, result.IsSessionPresent);
                }

                _refusedConnects.AddOrUpdate(result.ResultCode.ToString(), 1, (_, n) => n + 1);
            }
            catch (Exception ex) when (persistent || !_stop.IsCancellationRequested)
            {
                // The gateway is down or its silos are not reachable yet: the next live gateway, after a pause.
                Note($"{clientId} connect failed: {ex.GetType().Name} {ex.Message}");
            }

            client.Dispose();
            port = null;
            await Task.Delay(200);
        }
    }

    private async Task PublishAsync(int publisher)
    {
        var clientId = $"{_prefix}-pub-{publisher}".Replace('/', '-');
        var port = _cluster.Gateways[publisher % _cluster.Gateways.Count].MqttPort;
        IMqttClient? client = null;
        try
        {
            (client, _) = await ConnectAsync(clientId, persistent: false, configure: null, port);
            for (var n = 0; !_stop.IsCancellationRequested; n++)
            {
                var target = n % _subscribers.Count;
                if (_subscribers[target].Kind != SubscriberKind.Connected && n / _subscribers.Count % SparseEvery != 0)
                {
                    // Offline and slow subscribers get one round in SparseEvery: their queues stay within
                    // Mqtt:MaxQueuedMessages (1000), whose overflow is dropped by design, for a run of minutes.
                    continue;
                }

                var payload = $"{publisher}:{n}";
                var firstAttempt = _clock.Elapsed;
                for (var attempt = 1; ; attempt++)
                {
                    if (!client.IsConnected)
                    {
                        client.Dispose();
                        (client, _) = await ConnectAsync(clientId, persistent: false, configure: null);
                    }

                    try
                    {
                        using var timeout = new CancellationTokenSource(PublishTimeout);
                        var result = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(Topic(target)).WithPayload(payload)
                            .WithQualityOfServiceLevel((MqttQualityOfServiceLevel)_subscribers[target].Qos).Build(), timeout.Token);
                        if (result.ReasonCode is MqttClientPublishReasonCode.Success or MqttClientPublishReasonCode.NoMatchingSubscribers)
                        {
                            _acknowledged[payload] = new Published(target, firstAttempt, _clock.Elapsed, attempt, result.ReasonCode == MqttClientPublishReasonCode.NoMatchingSubscribers);
                            break;
                        }

                        Note($"{clientId} publish {payload} attempt {attempt}: {result.ReasonCode}");
                    }
                    catch (Exception ex) when (!_stop.IsCancellationRequested)
                    {
                        // Not acknowledged (connection lost, or no answer in time): sent again, after reconnecting if needed.
                        Note($"{clientId} publish {payload} attempt {attempt}: {ex.GetType().Name} {ex.Message}");
                    }
                    catch (Exception)
                    {
                        return;
                    }
                }

                // Paced, so a 2-core machine running five processes is not saturated by the clients themselves.
                await Task.Delay(5);
            }
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
            // Stopped while (re)connecting.
        }
        finally
        {
            client?.Dispose();
        }
    }

    private IEnumerable<string> Missing() =>
        _acknowledged.Where(a => !_subscribers[a.Value.Subscriber].Received.ContainsKey(a.Key)).Select(a => a.Key);

    private ChaosReport Report(IReadOnlyDictionary<string, long> drops)
    {
        var missing = Missing().ToList();

        // Where the missing messages were headed, how they were acknowledged and when they were first sent: a loss
        // spread over time points elsewhere than one in a window after a kill.
        var perSubscriber = missing.Select(m => _acknowledged[m]).GroupBy(a => a.Subscriber).OrderBy(g => g.Key).Select(g =>
            string.Create(CultureInfo.InvariantCulture, $"s{g.Key} ({_subscribers[g.Key].Kind}, QoS {_subscribers[g.Key].Qos}): {g.Count()} missing, {g.Count(a => a.NoMatchingSubscribers)} acknowledged as no matching subscribers, {g.Count(a => a.Attempts > 1)} sent more than once, first sent {g.Min(a => a.FirstAttempt).TotalSeconds:F1}-{g.Max(a => a.FirstAttempt).TotalSeconds:F1} s")).ToList();
        var qos2Duplicates = new List<string>();
        var orderViolations = new List<string>();
        foreach (var s in _subscribers)
        {
            if (s.Qos == 2)
            {
                // A publish sent twice by its publisher (after a failure) may arrive twice; one sent once must not.
                qos2Duplicates.AddRange(s.Received.Where(r => r.Value > 1 && _acknowledged.TryGetValue(r.Key, out var a) && a.Attempts == 1).Select(r => r.Key));
            }

            // Per publisher, a message seen for the first time after a later one from the same publisher is out of order.
            var highest = new Dictionary<int, long>();
            var seen = new HashSet<string>();
            foreach (var (payload, _) in s.Log)
            {
                var parts = payload.Split(':');
                var (publisher, n) = (int.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture));
                if (!seen.Add(payload))
                {
                    continue;
                }

                if (highest.TryGetValue(publisher, out var max) && n < max)
                {
                    orderViolations.Add($"s{s.Index}: {payload} after {publisher}:{max}");
                }

                highest[publisher] = Math.Max(max, n);
            }
        }

        // A missing message is counted against the last kill before it was first published (or none): one published
        // just before a kill and lost by it counts before that kill (CHAOS_KILLS=0 shows what is lost without kills).
        var kills = _kills.OrderBy(k => k.At).ToList();
        var lostPerKill = new int[kills.Count];
        var lostBeforeKills = 0;
        foreach (var payload in missing)
        {
            var index = kills.FindLastIndex(k => k.At <= _acknowledged[payload].FirstAttempt);
            if (index < 0)
            {
                lostBeforeKills++;
            }
            else
            {
                lostPerKill[index]++;
            }
        }

        var stalls = kills.Select((k, i) =>
        {
            var connected = SubscriberStalls(k.At, SubscriberKind.Connected);
            var slow = SubscriberStalls(k.At, SubscriberKind.Slow);
            var declared = Declaration(k);
            return new KillStall(k.Label, connected.Stalls, slow.Stalls, PublisherStalls(k.At), lostPerKill[i])
            {
                At = k.At,
                Cause = k.Cause,
                FirstDeclaredDead = declared?.First,
                DeclaredDead = declared?.Last,
                SubscribersNothingSent = connected.NothingSent,
                SlowSubscribersNothingSent = slow.NothingSent,
            };
        }).ToList();
        return new ChaosReport(_acknowledged.Count, missing, lostBeforeKills, qos2Duplicates, orderViolations, stalls, _subscribers.Sum(s => s.ResentAfterReconnect))
        {
            MissingBySubscriber = perSubscriber,
            Drops = drops,
            RefusedConnects = new SortedDictionary<string, int>(_refusedConnects, StringComparer.Ordinal),
            SessionsLost = _subscribers.Where(s => s.SessionsLost > 0).Select(s => $"s{s.Index} {s.SessionsLost}").ToList(),
        };
    }

    // For each subscriber of the kind: the time from the kill to its first delivery of a message first published after it.
    // A slow subscriber is sent one round in SparseEvery (one message every 2-4 s per publisher): counted from the kill
    // that would add the wait for the next such round, during which it has nothing to receive, so its stall runs from
    // the kill or, when later, from the first attempt to publish that message. Subscribers that were sent nothing after
    // the kill are counted apart: they waited for nothing.
    private (List<TimeSpan> Stalls, int NothingSent) SubscriberStalls(TimeSpan killedAt, SubscriberKind kind)
    {
        var stalls = new List<TimeSpan>();
        var nothingSent = 0;
        foreach (var s in _subscribers.Where(s => s.Kind == kind))
        {
            if (SubscriberStall(s, killedAt) is { } stall)
            {
                stalls.Add(stall);
            }
            else
            {
                nothingSent++;
            }
        }

        return (stalls, nothingSent);
    }

    // TimeSpan.MaxValue: messages first published after the kill were acknowledged for it and none arrived (they are
    // missing too). Null: none was acknowledged for it, so there was nothing to wait for; a slow subscriber's next round
    // may not come between a late kill or change and the end of the run.
    private TimeSpan? SubscriberStall(Subscriber s, TimeSpan killedAt)
    {
        var first = s.Log.Select(l => (l.At, Published: _acknowledged.TryGetValue(l.Payload, out var a) ? a : null))
            .Where(l => l.Published is not null && l.Published.FirstAttempt > killedAt).OrderBy(l => l.At).FirstOrDefault();
        if (first.Published is null)
        {
            return _acknowledged.Values.Any(a => a.Subscriber == s.Index && a.FirstAttempt > killedAt) ? TimeSpan.MaxValue : null;
        }

        return first.At - (s.Kind == SubscriberKind.Slow ? first.Published.FirstAttempt : killedAt);
    }

    // For each publisher: the time from the kill to the acknowledgement of its first message first sent after it.
    private List<TimeSpan> PublisherStalls(TimeSpan killedAt) =>
        [.. _acknowledged.GroupBy(a => a.Key.Split(':')[0]).Select(g => PublisherStall(g, killedAt))];

    // TimeSpan.MaxValue: the publisher kept sending and nothing it first sent after the kill was acknowledged.
    private static TimeSpan PublisherStall(IEnumerable<KeyValuePair<string, Published>> acknowledged, TimeSpan killedAt)
    {
        var first = acknowledged.Where(a => a.Value.FirstAttempt > killedAt).Select(a => a.Value.AcknowledgedAt).DefaultIfEmpty(TimeSpan.MaxValue).Min();
        return first == TimeSpan.MaxValue ? first : first - killedAt;
    }

    // When the silos running at a silo's kill saw it leave their active set, from the kill: the first of them and the
    // last. Each silo logs the moment (PushRetryOnSiloLoss: "Silo S127.0.0.1:{port}:{generation} no longer active"), which
    // is when Orleans on that silo fails the calls waiting on the dead one and sends new ones elsewhere; the members log
    // in UTC (ClusterFixture). Null for a gateway or a change, or when no silo logged it.
    private static (TimeSpan First, TimeSpan Last)? Declaration(Kill kill)
    {
        if (kill.SiloPort is not { } port)
        {
            return null;
        }

        var silo = string.Create(CultureInfo.InvariantCulture, $":{port}:");
        (TimeSpan First, TimeSpan Last)? seen = null;
        foreach (var process in kill.Survivors)
        {
            foreach (var line in process.Lines)
            {
                var end = line.IndexOf(" no longer active:", StringComparison.Ordinal);
                var start = end < 0 ? -1 : line.LastIndexOf(" Silo S", end, StringComparison.Ordinal);
                if (start < 0 || !line.Contains("PushRetryOnSiloLoss", StringComparison.Ordinal) || !line[start..end].Contains(silo, StringComparison.Ordinal)
                    || !DateTime.TryParseExact(line[..LogTimestamp.Length], LogTimestamp, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var loggedAt)
                    || loggedAt < kill.UtcAt.AddMilliseconds(-1))
                {
                    continue;
                }

                var after = loggedAt - kill.UtcAt;
                seen = seen is { } s ? (after < s.First ? after : s.First, after > s.Last ? after : s.Last) : (after, after);
                break;
            }
        }

        return seen;
    }

    // The members' console timestamp (appsettings.json, Logging:Console:FormatterOptions:TimestampFormat).
    private const string LogTimestamp = "yyyy-MM-ddTHH:mm:ss.fff";

    private sealed record Published(int Subscriber, TimeSpan FirstAttempt, TimeSpan AcknowledgedAt, int Attempts, bool NoMatchingSubscribers);

    private sealed record Kill(string Label, TimeSpan At, DateTime UtcAt)
    {
        public StallCause Cause { get; init; } = StallCause.Change;

        // A killed silo's silo-to-silo port, which its address in the other silos' logs carries.
        public int? SiloPort { get; init; }

        public IReadOnlyList<CliProcess> Survivors { get; init; } = [];
    }

    private enum SubscriberKind
    {
        Connected,
        Slow,
        Offline,
    }

    private sealed class Subscriber(ChaosRun run, int index, int qos, SubscriberKind kind) : IDisposable
    {
        private static readonly TimeSpan SlowAcknowledgement = TimeSpan.FromMilliseconds(150);
        private readonly ConcurrentDictionary<string, ushort> _packetIds = new();
        private IMqttClient? _client;
        private int _resent;
        private volatile bool _disposed;
        private int _connects;
        private volatile bool _subscribed;
        private int _sessionsLost;

        public int Index => index;

        public int Qos => qos;

        public SubscriberKind Kind => kind;

        public IMqttClient Client => _client!;

        public ConcurrentDictionary<string, int> Received { get; } = new();

        /// <summary>
        /// QoS 2 copies the broker sent again, with DUP and the packet id of a copy this subscriber already received,
        /// because the PUBREC for it was lost with a killed member. A client keeping its session state across
        /// reconnects recognises the id and does not deliver the copy again; this harness reconnects with a new client
        /// instance, which has forgotten it, so such copies are counted here and not as duplicates.
        /// </summary>
        public int ResentAfterReconnect => Volatile.Read(ref _resent);

        public ConcurrentQueue<(string Payload, TimeSpan At)> Log { get; } = new();

        /// <summary>Reconnects the broker answered with Session Present 0 (its session was lost); subscribed again.</summary>
        public int SessionsLost => Volatile.Read(ref _sessionsLost);

        public async Task ConnectAsync()
        {
            // The handlers go on before the client connects, and it becomes this subscriber's client then: a
            // connection that drops right after its CONNACK still starts a reconnect.
            var (client, sessionPresent) = await run.ConnectAsync($"{run._prefix}-sub-{index}".Replace('/', '-'), persistent: true, configure: client =>
            {
                client.ApplicationMessageReceivedAsync += OnMessageAsync;
                client.DisconnectedAsync += e => OnDisconnectedAsync(client, e);
                Volatile.Write(ref _client, client);
            }, receiveMaximum: kind == SubscriberKind.Slow ? (ushort)1 : (ushort)0);
            if (!sessionPresent && Interlocked.Increment(ref _connects) > 1)
            {
                Interlocked.Increment(ref _sessionsLost);
            }

            if (!sessionPresent || !_subscribed)
            {
                // A new session (the first connect, or Session Present 0 after the broker lost it): subscribed again, as
                // a device does; what was sent to it meanwhile stays missing.
                _subscribed = false;
                try
                {
                    await client.SubscribeAsync(run.Topic(index), qos == 1 ? MqttQualityOfServiceLevel.AtLeastOnce : MqttQualityOfServiceLevel.ExactlyOnce);
                    _subscribed = true;
                }
                catch (Exception) when (!client.IsConnected)
                {
                    // The connection dropped before the SUBACK: the reconnect it starts subscribes again.
                }
            }
        }

        public void Dispose()
        {
            _disposed = true;
            _client?.Dispose();
        }

        private async Task OnMessageAsync(MqttApplicationMessageReceivedEventArgs e)
        {
            var payload = e.ApplicationMessage.ConvertPayloadToString();
            if (qos == 2 && e.ApplicationMessage.Dup && _packetIds.TryGetValue(payload, out var first) && first == e.PacketIdentifier)
            {
                Interlocked.Increment(ref _resent);
                return;
            }

            _packetIds.TryAdd(payload, e.PacketIdentifier);
            Received.AddOrUpdate(payload, 1, (_, n) => n + 1);
            Log.Enqueue((payload, run._clock.Elapsed));
            if (kind == SubscriberKind.Slow)
            {
                // The acknowledgement comes late, as from a client that works on each message first. MQTTnet runs this
                // handler on its own task for received publishes; a dropped connection waits for it (the delay and a
                // failed send at most) before raising DisconnectedAsync, so the reconnect is late by that, not lost.
                e.AutoAcknowledge = false;
                await Task.Delay(SlowAcknowledgement);
                await e.AcknowledgeAsync(CancellationToken.None);
            }
        }

        private async Task OnDisconnectedAsync(IMqttClient client, MqttClientDisconnectedEventArgs e)
        {
            // A connect attempt that failed (ClientWasConnected false) is retried by ConnectAsync itself; a client that
            // was replaced already has its successor.
            if (_disposed || kind == SubscriberKind.Offline && !run._stop.IsCancellationRequested || !e.ClientWasConnected || !ReferenceEquals(client, Volatile.Read(ref _client)))
            {
                return;
            }

            // Its gateway went (or closed the connection): the session continues on any live gateway.
            run.Note($"{run._prefix}-sub-{index} disconnected: {e.Reason} {e.ReasonString} {e.Exception?.GetType().Name}".Replace('/', '-'));
            await ConnectAsync();
            client.Dispose();
        }
    }
}

/// <summary>The outcome of a <see cref="ChaosRun"/>.</summary>
public sealed record ChaosReport(int Acknowledged, IReadOnlyList<string> Missing, int LostBeforeKills, IReadOnlyList<string> Qos2Duplicates, IReadOnlyList<string> OrderViolations, IReadOnlyList<KillStall> Kills, int Qos2ResentAfterReconnect)
{
    /// <summary>Per subscriber with missing messages: its kind, how many, how they were acknowledged and when sent.</summary>
    public IReadOnlyList<string> MissingBySubscriber { get; init; } = [];

    /// <summary>Messages the live members counted as dropped at the end of the run (<c>mqtt_messages_dropped_total</c>), by reason.</summary>
    public IReadOnlyDictionary<string, long> Drops { get; init; } = new Dictionary<string, long>();

    /// <summary>Subscribers told Session Present 0 on a reconnect (their session lost; they subscribed again), with how often.</summary>
    public IReadOnlyList<string> SessionsLost { get; init; } = [];

    /// <summary>Client connects the brokers refused with a CONNACK reason code (the clients retried them), by code.</summary>
    public IReadOnlyDictionary<string, int> RefusedConnects { get; init; } = new Dictionary<string, int>();

    /// <summary>A table: one row per kill with the stalls of subscribers and publishers (p50 / max) and what was lost, then the totals.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        text.AppendLine("| kill | silo declared dead after it (first / last silo) | connected subscribers p50 / max | slow subscribers p50 / max | publishers p50 / max | lost |");
        text.AppendLine("|---|---|---|---|---|---|");
        foreach (var k in Kills)
        {
            var declared = k.Cause != StallCause.SiloKilled ? "-"
                : k.DeclaredDead is { } last ? $"{KillStall.Format(k.FirstDeclaredDead!.Value)} / {KillStall.Format(last)}" : "not seen";
            text.AppendLine(CultureInfo.InvariantCulture, $"| {k.Label} | {declared} | {Range(k.Subscribers, k.SubscribersNothingSent, KillStall.NeverReceived)} | {Range(k.SlowSubscribers, k.SlowSubscribersNothingSent, KillStall.NeverReceived)} | {Range(k.Publishers, 0, KillStall.NeverAcknowledged)} | {k.Lost} |");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"{Acknowledged} acknowledged, {Missing.Count} missing ({LostBeforeKills} of them first sent before the first kill), {Qos2Duplicates.Count} QoS 2 duplicates ({Qos2ResentAfterReconnect} QoS 2 copies re-sent with DUP and the same packet id after a reconnect, not counted), {OrderViolations.Count} order violations");
        text.AppendLine("dropped by the brokers (live members at the end): " + (Drops.Count == 0 ? "none" : string.Join(", ", Drops.Select(d => $"{d.Key} {d.Value}"))));
        text.AppendLine("subscribers told Session Present 0 on a reconnect (subscribed again): " + (SessionsLost.Count == 0 ? "none" : string.Join(", ", SessionsLost)));
        text.AppendLine("connects refused with a CONNACK reason code (retried): " + (RefusedConnects.Count == 0 ? "none" : string.Join(", ", RefusedConnects.Select(r => $"{r.Key} {r.Value}"))));
        foreach (var line in MissingBySubscriber.Concat(Missing.Take(5).Select(m => "missing " + m)).Concat(Qos2Duplicates.Take(5).Select(d => "duplicate " + d)).Concat(OrderViolations.Take(5)))
        {
            text.AppendLine(line);
        }

        return text.ToString();
    }

    // p50 / max of the clients that had something to wait for, and how many had nothing (sent nothing after the kill).
    private static string Range(IReadOnlyList<TimeSpan> stalls, int nothingSent, string never)
    {
        var range = stalls.Count == 0 ? (nothingSent == 0 ? "-" : KillStall.NothingSent)
            : $"{KillStall.Format(KillStall.Percentile(stalls, 0.5), never)} / {KillStall.Format(KillStall.Percentile(stalls, 1), never)}";
        return stalls.Count > 0 && nothingSent > 0 ? $"{range} ({nothingSent} {KillStall.NothingSent})" : range;
    }
}

/// <summary>What a <see cref="KillStall"/> came after.</summary>
public enum StallCause
{
    /// <summary>A planned change (<see cref="ChaosRun.ChangeAsync"/>): a member stopped gracefully or replaced.</summary>
    Change,

    /// <summary>A gateway killed with SIGKILL.</summary>
    GatewayKilled,

    /// <summary>A silo killed with SIGKILL.</summary>
    SiloKilled,
}

/// <summary>
/// How long the connected and slow subscribers and the publishers waited after one kill, and what was lost after it.
/// A stall of <see cref="TimeSpan.MaxValue"/> is "never": a subscriber received none of the messages acknowledged for it
/// that were first published after the kill, or a publisher got none of its messages first sent after it acknowledged.
/// Subscribers that were sent nothing after the kill waited for nothing and are only counted.
/// </summary>
public sealed record KillStall(string Label, IReadOnlyList<TimeSpan> Subscribers, IReadOnlyList<TimeSpan> SlowSubscribers, IReadOnlyList<TimeSpan> Publishers, int Lost)
{
    /// <summary>How <see cref="Format"/> prints a subscriber's stall of <see cref="TimeSpan.MaxValue"/>.</summary>
    public const string NeverReceived = "never received";

    /// <summary>How <see cref="Format"/> prints a publisher's stall of <see cref="TimeSpan.MaxValue"/>.</summary>
    public const string NeverAcknowledged = "never acknowledged";

    /// <summary>Said of subscribers that were sent nothing after the kill.</summary>
    public const string NothingSent = "sent nothing after it";

    /// <summary>Every stall of the kill: subscribers of both kinds and publishers.</summary>
    public IEnumerable<TimeSpan> All => Subscribers.Concat(SlowSubscribers).Concat(Publishers);

    /// <summary>The kill's time from the start of the run.</summary>
    public TimeSpan At { get; init; }

    /// <summary>A silo or a gateway killed, or a planned change.</summary>
    public StallCause Cause { get; init; }

    /// <summary>
    /// For a silo killed: how long after the kill the last of the silos running then saw it declared dead (left their
    /// active set, when Orleans fails the calls waiting on it there); null when none of them logged it.
    /// </summary>
    public TimeSpan? DeclaredDead { get; init; }

    /// <summary>As <see cref="DeclaredDead"/>, the first of those silos.</summary>
    public TimeSpan? FirstDeclaredDead { get; init; }

    /// <summary>Connected subscribers sent nothing after the kill (not in <see cref="Subscribers"/>).</summary>
    public int SubscribersNothingSent { get; init; }

    /// <summary>Slow subscribers sent nothing after the kill (not in <see cref="SlowSubscribers"/>).</summary>
    public int SlowSubscribersNothingSent { get; init; }

    /// <summary>Seconds with two decimals, or <paramref name="never"/> for <see cref="TimeSpan.MaxValue"/>.</summary>
    public static string Format(TimeSpan stall, string never = "never") =>
        stall == TimeSpan.MaxValue ? never : string.Create(CultureInfo.InvariantCulture, $"{stall.TotalSeconds:F2} s");

    /// <summary>The <paramref name="fraction"/> percentile (nearest rank) of <paramref name="stalls"/>; zero when empty.</summary>
    public static TimeSpan Percentile(IReadOnlyList<TimeSpan> stalls, double fraction)
    {
        if (stalls.Count == 0)
        {
            return TimeSpan.Zero;
        }

        var sorted = stalls.Order().ToList();
        return sorted[Math.Clamp((int)Math.Ceiling(fraction * sorted.Count) - 1, 0, sorted.Count - 1)];
    }
}
