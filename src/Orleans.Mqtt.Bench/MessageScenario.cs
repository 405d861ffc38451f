using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// The message scenarios (p2p, pub, sub, fanout, fanin): connect the subscribers and subscribe, connect
/// the publishers, publish for the warm-up and the measured interval, drain, and turn the counters into a
/// <see cref="BenchResult"/>.
/// </summary>
internal sealed class MessageScenario(BenchOptions options, TextWriter log)
{
    private const int ConnectParallelism = 16;
    private static readonly TimeSpan QuietDrain = TimeSpan.FromSeconds(1);

    private readonly RunState _state = new(log);
    private volatile string _phase = "connect";

    /// <summary>Runs the scenario; cancelling ends the current phase early and still produces a result.</summary>
    public async Task<BenchResult> RunAsync(CancellationToken cancellationToken)
    {
        var runId = options.RunId ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var prefix = options.Topic ?? $"bench/{runId}";
        var kind = options.ScenarioKind;
        var endpoints = await Endpoints.ResolveAsync(options, cancellationToken).ConfigureAwait(false);

        var publishers = new BenchPublisher[kind == "sub" ? 0 : options.Publishers];
        for (var i = 0; i < publishers.Length; i++)
        {
            var topic = kind == "fanout" ? prefix : $"{prefix}/{i}";
            publishers[i] = new BenchPublisher(i, topic, options, _state);
        }

        var shared = kind == "fanin" ? new TrackerSet(shared: true) : null;
        var subscribers = new BenchSubscriber[kind == "pub" ? 0 : options.Subscribers];
        for (var i = 0; i < subscribers.Length; i++)
        {
            var filter = kind switch
            {
                "p2p" => $"{prefix}/{i}",
                "fanout" => prefix,
                "fanin" => $"$share/{options.Group}/{prefix}/+",
                _ => $"{prefix}/+",
            };
            subscribers[i] = new BenchSubscriber(i, filter, options, shared ?? new TrackerSet(shared: false), kind == "sub" ? null : publishers, _state);
        }

        log.WriteLine(
            $"run {runId} {options.Scenario}: connecting {subscribers.Length} subscribers and {publishers.Length} publishers to " +
            $"{string.Join(",", options.Hosts)} (MQTT {options.ProtocolName}, QoS {options.Qos})");

        // Subscribers first, so that nothing is published before every subscription is in place.
        var connectionIndex = 0;
        var clientPrefix = $"bench-{runId}";
        try
        {
            await ConnectAllAsync(subscribers, endpoints, clientPrefix + "-s", 0, subscribe: true, cancellationToken).ConfigureAwait(false);
            connectionIndex = subscribers.Length;
            await ConnectAllAsync(publishers, endpoints, clientPrefix + "-p", connectionIndex, subscribe: false, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _state.Report("cancelled while connecting");
        }

        var runningSubscribers = Array.FindAll(subscribers, s => s.IsConnected);
        var runningPublishers = Array.FindAll(publishers, p => p.IsConnected);

        // What frees a publisher's slot besides its acknowledgement: deliveries to the subscribers watching it.
        var expected = kind switch
        {
            "p2p" or "fanin" => 1,
            "fanout" => runningSubscribers.Length,
            _ => 0,
        };
        foreach (var publisher in publishers)
        {
            publisher.ExpectedDeliveries = kind == "p2p" && !subscribers[publisher.Index].IsConnected ? 0 : expected;
            if (options.Qos > 0 && publisher.IsConnected && publisher.ServerReceiveMaximum < options.Window)
            {
                _state.Report($"--window {options.Window} is above the broker's Receive Maximum {publisher.ServerReceiveMaximum}");
            }
        }

        var clients = new List<BenchClient>(subscribers.Length + publishers.Length);
        clients.AddRange(subscribers);
        clients.AddRange(publishers);
        if (runningSubscribers.Length + runningPublishers.Length == 0 || cancellationToken.IsCancellationRequested)
        {
            await CloseAllAsync(clients).ConfigureAwait(false);
            return BuildResult(runId, publishers, subscribers, default, default, 0);
        }

        using var stopPublishing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var stopBackground = new CancellationTokenSource();
        var start = Stopwatch.GetTimestamp();
        var progress = ReportProgressAsync(runningPublishers, runningSubscribers, start, stopBackground.Token);
        var keepAlive = KeepAlive.RunAsync(() => clients, options.KeepAlive, stopBackground.Token);
        var ticker = TickAsync(runningPublishers, stopBackground.Token);

        // At a fixed rate each publisher gets an equal share, its start offset so they do not send in lockstep.
        var ticksPerMessage = options.Rate > 0 ? Stopwatch.Frequency * runningPublishers.Length / options.Rate : 0;
        var loops = new Task[runningPublishers.Length];
        for (var i = 0; i < runningPublishers.Length; i++)
        {
            var offset = (long)(ticksPerMessage * i / runningPublishers.Length);
            var publisher = runningPublishers[i];
            loops[i] = Task.Run(() => publisher.PublishLoopAsync(start + offset, ticksPerMessage, stopPublishing.Token), CancellationToken.None);
        }

        _phase = "warmup";
        await DelayAsync(options.Warmup, cancellationToken).ConfigureAwait(false);

        using var process = Process.GetCurrentProcess();
        var first = Snapshot.Take(runningPublishers, runningSubscribers, process, options.BrokerPids);
        _state.MeasureStartTicks = first.Timestamp;
        _phase = "measure";
        await DelayAsync(options.Duration, cancellationToken).ConfigureAwait(false);
        var second = Snapshot.Take(runningPublishers, runningSubscribers, process, options.BrokerPids);

        _phase = "drain";
        await stopPublishing.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(loops).ConfigureAwait(false);
        await DrainAsync(runningPublishers, runningSubscribers, expected).ConfigureAwait(false);

        _phase = "close";
        await stopBackground.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(progress, keepAlive, ticker).ConfigureAwait(false);
        await CloseAllAsync(clients).ConfigureAwait(false);
        return BuildResult(runId, publishers, subscribers, first, second, options.Duration.TotalSeconds);
    }

    private async Task ConnectAllAsync(BenchClient[] clients, Endpoints endpoints, string idPrefix, int firstIndex, bool subscribe, CancellationToken cancellationToken)
    {
        await Parallel.ForEachAsync(
            Enumerable.Range(0, clients.Length),
            new ParallelOptions { MaxDegreeOfParallelism = ConnectParallelism, CancellationToken = cancellationToken },
            async (i, ct) =>
            {
                var client = clients[i];
                var index = firstIndex + i;
                var connect = MqttWire.Connect(
                    options.ProtocolLevel, idPrefix + i, options.SessionExpiry == 0, options.SessionExpiry, options.KeepAlive, options.UserName, options.Password);
                try
                {
                    var reason = await client.ConnectAsync(endpoints.Broker(index), endpoints.Source(index), connect, options.ConnectTimeout, ct).ConfigureAwait(false);
                    if (reason != 0)
                    {
                        _state.OnConnectError($"{client.Name}: CONNACK 0x{reason:X2}");
                        return;
                    }

                    if (subscribe && client is BenchSubscriber subscriber)
                    {
                        var granted = await client.SubscribeAsync(subscriber.Filter, options.Qos, options.ConnectTimeout, ct).ConfigureAwait(false);
                        if (granted >= 0x80)
                        {
                            _state.OnConnectError($"subscribe {subscriber.Filter} refused: 0x{granted:X2}");
                            await client.CloseAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
                        }
                        else if (granted < options.Qos)
                        {
                            _state.Report($"subscribe {subscriber.Filter} granted QoS {granted} only");
                        }
                    }
                }
                catch (Exception exception) when (exception is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    _state.OnConnectError($"{client.Name}: {exception.GetType().Name}: {exception.Message}");
                }
            }).ConfigureAwait(false);
    }

    // One ticker for every publisher's send loop: scheduled sends and stall checks, instead of a timer per wait.
    // A thread of its own that sleeps a millisecond at a time: a timer would first wake the timer thread, then a
    // pool thread, and each wake-up delays the sends that are due.
    private static Task TickAsync(BenchPublisher[] publishers, CancellationToken stop)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    Thread.Sleep(1);
                    var now = Stopwatch.GetTimestamp();
                    foreach (var publisher in publishers)
                    {
                        publisher.Tick(now);
                    }
                }

                done.SetResult();
            }
            catch (Exception ex)
            {
                // The run waits on this task: a fault must end it, as the awaited timer loop's fault did.
                done.SetException(ex);
            }
        })
        {
            IsBackground = true,
            Name = "bench ticker",
        };
        thread.Start();
        return done.Task;
    }

    private async Task DrainAsync(BenchPublisher[] publishers, BenchSubscriber[] subscribers, int expected)
    {
        // Wait for outstanding acknowledgements, then for deliveries to catch up with what was
        // accepted, giving up once nothing has arrived for a while (lost messages never will).
        // sub has no publish counts: it counts until nothing has arrived for a while.
        var timeout = options.ConnectTimeout;
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        foreach (var publisher in publishers)
        {
            while (publisher.AwaitingAcknowledgements && publisher.IsConnected && Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(10).ConfigureAwait(false);
            }

            if (publisher.AwaitingAcknowledgements)
            {
                _state.Report($"{publisher.Name}: acknowledgements still outstanding after {timeout.TotalSeconds:F0} s");
            }
        }

        if (subscribers.Length == 0)
        {
            return;
        }

        deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var lastDelivered = -1L;
        var lastChange = Stopwatch.GetTimestamp();
        while (Stopwatch.GetTimestamp() < deadline)
        {
            long delivered = 0;
            long published = 0;
            foreach (var subscriber in subscribers)
            {
                delivered += subscriber.Delivered;
            }

            foreach (var publisher in publishers)
            {
                published += publisher.Published * publisher.ExpectedDeliveries;
            }

            // Without publishers in this run (sub) only a quiet stream ends the drain.
            if (expected > 0 && delivered >= published)
            {
                return;
            }

            if (delivered != lastDelivered)
            {
                lastDelivered = delivered;
                lastChange = Stopwatch.GetTimestamp();
            }
            else if (Stopwatch.GetElapsedTime(lastChange) > QuietDrain)
            {
                return;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    private async Task CloseAllAsync(List<BenchClient> clients)
    {
        _state.Closing = true;
        await Parallel.ForEachAsync(
            clients,
            new ParallelOptions { MaxDegreeOfParallelism = ConnectParallelism },
            (client, _) => new ValueTask(client.CloseAsync(TimeSpan.FromSeconds(2)))).ConfigureAwait(false);
    }

    private async Task ReportProgressAsync(BenchPublisher[] publishers, BenchSubscriber[] subscribers, long start, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var last = Snapshot.Take(publishers, subscribers, null);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                var now = Snapshot.Take(publishers, subscribers, null);
                var seconds = Stopwatch.GetElapsedTime(last.Timestamp, now.Timestamp).TotalSeconds;
                var elapsed = Stopwatch.GetElapsedTime(start, now.Timestamp).TotalSeconds;
                log.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"[{elapsed,6:F1}s {_phase,-7}] delivered {(now.Delivered - last.Delivered) / seconds,10:N0}/s  " +
                    $"published {(now.Published - last.Published) / seconds,10:N0}/s  " +
                    $"total delivered {now.Delivered:N0} published {now.Published:N0}  " +
                    $"errors connect {_state.ConnectErrors} dropped {_state.Disconnects} publish {now.PublishErrors:N0} stalls {now.Stalls:N0}"));
                last = now;
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private BenchResult BuildResult(string runId, BenchPublisher[] publishers, BenchSubscriber[] subscribers, Snapshot first, Snapshot second, double seconds)
    {
        var kind = options.ScenarioKind;
        var latency = new LatencyHistogram();
        var sendLatency = new LatencyHistogram();
        long malformed = 0, delivered = 0, ownOrder = 0;
        foreach (var subscriber in subscribers)
        {
            latency.Add(subscriber.Latency);
            sendLatency.Add(subscriber.SendLatency);
            malformed += subscriber.Malformed;
            delivered += subscriber.Delivered;
            ownOrder += subscriber.OutOfOrder;
        }

        long published = 0, publishErrors = 0, stalls = 0;
        var publishedBy = new long[publishers.Length];
        foreach (var publisher in publishers)
        {
            publishedBy[publisher.Index] = publisher.Published;
            published += publisher.Published;
            publishErrors += publisher.PublishErrors;
            stalls += publisher.Stalls;
        }

        var trackers = Array.ConvertAll(subscribers, s => s.Trackers);
        var totals = Count(kind, trackers, publishedBy);
        var (troubled, worst) = kind == "fanin" ? (totals.Lost + totals.Duplicates > 0 ? 1 : 0, totals.Lost) : Worst(kind, trackers, publishedBy);
        if (kind == "fanin")
        {
            // A group's messages are spread over its members: order only means something per member.
            totals = totals with { OutOfOrder = ownOrder };
        }

        var runningPublishers = Array.FindAll(publishers, p => p.IsConnected || p.Published > 0).Length;
        var runningSubscribers = Array.FindAll(subscribers, s => s.IsConnected || s.Delivered > 0).Length;
        var exitCode = _state.ConnectErrors > 0 || runningPublishers + runningSubscribers == 0 ? 2 : _state.Disconnects > 0 ? 3 : 0;
        seconds = second.Timestamp > 0 ? Stopwatch.GetElapsedTime(first.Timestamp, second.Timestamp).TotalSeconds : 0;
        var cpu = seconds > 0 ? (second.Cpu - first.Cpu).TotalSeconds / seconds : 0;
        var brokerCpu = seconds > 0 ? (second.BrokerCpu - first.BrokerCpu).TotalSeconds / seconds : 0;
        var messages = (second.Delivered - first.Delivered) + (second.Published - first.Published);
        var allocated = messages > 0 ? (second.Allocated - first.Allocated) / (double)messages : 0;
        return new BenchResult
        {
            Scenario = options.Scenario,
            RunId = runId,
            Broker = string.Join(",", options.Hosts),
            Protocol = options.ProtocolName,
            Qos = options.Qos,
            Pairs = kind == "p2p" ? options.Pairs : 0,
            PairsRunning = kind == "p2p" ? Math.Min(runningPublishers, runningSubscribers) : 0,
            Publishers = publishers.Length,
            PublishersRunning = runningPublishers,
            Subscribers = subscribers.Length,
            SubscribersRunning = runningSubscribers,
            Size = options.Size,
            Window = options.Window,
            Rate = options.Rate,
            WarmupSeconds = options.Warmup.TotalSeconds,
            MeasuredSeconds = seconds,
            DeliveredMeasured = second.Delivered - first.Delivered,
            PublishedMeasured = second.Published - first.Published,
            DeliveredPerSecond = seconds > 0 ? (second.Delivered - first.Delivered) / seconds : 0,
            PublishedPerSecond = seconds > 0 ? (second.Published - first.Published) / seconds : 0,
            DeliveredTotal = delivered,
            PublishedTotal = published,
            LatencyMs = LatencySummary.FromNanoseconds(latency),
            SendLatencyMs = LatencySummary.FromNanoseconds(sendLatency),
            Lost = totals.Lost,
            Duplicates = totals.Duplicates,
            OutOfOrder = totals.OutOfOrder,
            Malformed = malformed,
            SubscribersWithLossOrDuplicates = troubled,
            WorstSubscriberLost = worst,
            ConnectErrors = _state.ConnectErrors,
            Disconnects = _state.Disconnects,
            PublishErrors = publishErrors,
            WindowStalls = stalls,
            ToolCpuCores = cpu,
            BrokerCpuCores = brokerCpu,
            ToolAllocatedBytesPerMessage = allocated,
            ExitCode = exitCode,
            Errors = _state.ErrorSamples,
        };
    }

    /// <summary>
    /// Loss, duplicates and order of a scenario's subscribers (their trackers, by subscriber index), from what
    /// each publisher had accepted. In fanin every member shares one tracker set: the group counts once.
    /// </summary>
    internal static DeliveryTotals Count(string kind, IReadOnlyList<TrackerSet> trackers, IReadOnlyList<long> publishedBy)
    {
        var totals = default(DeliveryTotals);
        switch (kind)
        {
            case "p2p":
                for (var i = 0; i < trackers.Count; i++)
                {
                    totals += DeliveryTotals.Of(trackers[i], publishedBy, onlyPublisher: i);
                }

                break;
            case "fanout":
                foreach (var set in trackers)
                {
                    totals += DeliveryTotals.Of(set, publishedBy);
                }

                break;
            case "fanin":
                if (trackers.Count > 0)
                {
                    totals = DeliveryTotals.Of(trackers[0], publishedBy);
                }

                break;
            case "sub":
                foreach (var set in trackers)
                {
                    totals += DeliveryTotals.Of(set, published: null);
                }

                break;
        }

        return totals;
    }

    /// <summary>Subscribers that lost or got duplicates, and the most any one subscriber lost (not for fanin: its group counts as one).</summary>
    internal static (int Subscribers, long WorstLost) Worst(string kind, IReadOnlyList<TrackerSet> trackers, IReadOnlyList<long> publishedBy)
    {
        var count = 0;
        long worst = 0;
        for (var i = 0; i < trackers.Count; i++)
        {
            var one = kind switch
            {
                "p2p" => DeliveryTotals.Of(trackers[i], publishedBy, onlyPublisher: i),
                "sub" => DeliveryTotals.Of(trackers[i], published: null),
                _ => DeliveryTotals.Of(trackers[i], publishedBy),
            };
            if (one.Lost + one.Duplicates > 0)
            {
                count++;
            }

            worst = Math.Max(worst, one.Lost);
        }

        return (count, worst);
    }

    private static async Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Totals over all running clients at one instant.</summary>
    private readonly record struct Snapshot(long Timestamp, long Delivered, long Published, long PublishErrors, long Stalls, TimeSpan Cpu, TimeSpan BrokerCpu, long Allocated)
    {
        public static Snapshot Take(BenchPublisher[] publishers, BenchSubscriber[] subscribers, Process? process, IReadOnlyList<int>? brokerPids = null)
        {
            long delivered = 0, published = 0, errors = 0, stalls = 0;
            foreach (var subscriber in subscribers)
            {
                delivered += subscriber.Delivered;
            }

            foreach (var publisher in publishers)
            {
                published += publisher.Published;
                errors += publisher.PublishErrors;
                stalls += publisher.Stalls;
            }

            var cpu = TimeSpan.Zero;
            if (process is not null)
            {
                process.Refresh();
                cpu = process.TotalProcessorTime;
            }

            var brokerCpu = brokerPids is { Count: > 0 } ? ProcessMemory.CpuTime(brokerPids) : TimeSpan.Zero;
            return new Snapshot(Stopwatch.GetTimestamp(), delivered, published, errors, stalls, cpu, brokerCpu, GC.GetTotalAllocatedBytes());
        }
    }
}
