using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// The subroute scenario: how soon after SUBACK a subscription is routable from another endpoint. Each of
/// <see cref="BenchOptions.Concurrency"/> lanes holds a subscriber connection on endpoint <c>i</c> and a
/// publisher connection on endpoint <c>i + 1</c> of <c>--host</c> (the same endpoint when only one is given)
/// and runs trials one after the other on them: subscribe (QoS 1) to a fresh topic and, at its SUBACK,
/// publish one QoS 1 message to it; the message is a miss unless it arrives within the trial timeout.
/// The retained variant publishes a retained message first and subscribes at its PUBACK.
/// </summary>
internal sealed class SubrouteScenario(BenchOptions options, TextWriter log)
{
    private const int ConnectParallelism = 16;
    private const int MaxMissedTrials = 10;
    private static readonly double NanosPerTick = 1_000_000_000.0 / Stopwatch.Frequency;

    private readonly RunState _state = new(log);
    private readonly Lock _lock = new();
    private readonly LatencyHistogram _route = new();
    private readonly LatencyHistogram _subAck = new();
    private readonly List<long> _missedTrials = [];
    private long _nextTrial;
    private int _delivered;
    private int _misses;
    private int _failed;
    private long _lastOutcome;

    private enum Outcome
    {
        Delivered,
        Missed,
        Failed,
    }

    /// <summary>Runs the trials; cancelling stops starting new ones and still produces a result.</summary>
    public async Task<BenchResult> RunAsync(CancellationToken cancellationToken)
    {
        var runId = options.RunId ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var prefix = $"{options.Topic ?? $"bench/{runId}"}/route";
        var endpoints = await Endpoints.ResolveAsync(options, cancellationToken).ConfigureAwait(false);
        var lanes = Math.Min(options.Concurrency, options.Trials);
        var subscribers = new RouteClient[lanes];
        var publishers = new RouteClient[lanes];
        for (var i = 0; i < lanes; i++)
        {
            subscribers[i] = new RouteClient(i, "subscriber", options, _state);
            publishers[i] = new RouteClient(i, "publisher", options, _state);
        }

        var hosts = endpoints.Brokers.Count;
        log.WriteLine(
            $"run {runId} subroute{(options.Retained ? " --retained" : "")}: {options.Trials:N0} trials, {lanes} at once, subscribers and publishers " +
            $"on {(hosts > 1 ? "neighbouring endpoints" : "the same endpoint")} of {string.Join(",", options.Hosts)} (MQTT {options.ProtocolName})");

        var clients = new List<BenchClient>(2 * lanes);
        clients.AddRange(subscribers);
        clients.AddRange(publishers);
        try
        {
            // Lane i: subscriber on endpoint i, publisher on endpoint i + 1; connection indexes pick the source addresses.
            await Parallel.ForEachAsync(
                Enumerable.Range(0, 2 * lanes),
                new ParallelOptions { MaxDegreeOfParallelism = ConnectParallelism, CancellationToken = cancellationToken },
                async (i, ct) =>
                {
                    var lane = i % lanes;
                    var isSubscriber = i < lanes;
                    var client = isSubscriber ? subscribers[lane] : publishers[lane];
                    var broker = endpoints.Broker(isSubscriber ? lane : lane + 1);
                    await ConnectAsync(client, $"bench-{runId}-{(isSubscriber ? "rs" : "rp")}{lane}", broker, endpoints.Source(i), ct).ConfigureAwait(false);
                }).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _state.Report("cancelled while connecting");
        }

        using var process = Process.GetCurrentProcess();
        var cpuStart = process.TotalProcessorTime;
        using var stopBackground = new CancellationTokenSource();
        var start = Stopwatch.GetTimestamp();
        Volatile.Write(ref _lastOutcome, start);
        var progress = ReportProgressAsync(start, stopBackground.Token);
        var keepAlive = KeepAlive.RunAsync(() => clients, options.KeepAlive, stopBackground.Token);
        var runs = new Task[lanes];
        for (var i = 0; i < lanes; i++)
        {
            var (subscriber, publisher) = (subscribers[i], publishers[i]);
            var lane = $"{subscriber.Name} on {endpoints.Broker(i)}, {publisher.Name} on {endpoints.Broker(i + 1)}";
            runs[i] = Task.Run(() => RunLaneAsync(subscriber, publisher, lane, prefix, cancellationToken), CancellationToken.None);
        }

        await Task.WhenAll(runs).ConfigureAwait(false);
        var seconds = Stopwatch.GetElapsedTime(start, Volatile.Read(ref _lastOutcome)).TotalSeconds;
        await stopBackground.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(progress, keepAlive).ConfigureAwait(false);
        process.Refresh();
        var cpu = (process.TotalProcessorTime - cpuStart).TotalSeconds / Math.Max(0.001, Stopwatch.GetElapsedTime(start).TotalSeconds);
        var running = Array.FindAll(subscribers, s => s.IsConnected).Length;
        var runningPublishers = Array.FindAll(publishers, p => p.IsConnected).Length;
        _state.Closing = true;
        await Parallel.ForEachAsync(
            clients,
            new ParallelOptions { MaxDegreeOfParallelism = ConnectParallelism },
            (client, _) => new ValueTask(client.CloseAsync(TimeSpan.FromSeconds(2)))).ConfigureAwait(false);
        return BuildResult(runId, lanes, running, runningPublishers, seconds, cpu);
    }

    private async Task ConnectAsync(RouteClient client, string clientId, IPEndPoint broker, IPAddress? source, CancellationToken cancellationToken)
    {
        var connect = MqttWire.Connect(
            options.ProtocolLevel, clientId, options.SessionExpiry == 0, options.SessionExpiry, options.KeepAlive, options.UserName, options.Password);
        try
        {
            var reason = await client.ConnectAsync(broker, source, connect, options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
            if (reason != 0)
            {
                _state.OnConnectError($"{client.Name}: CONNACK 0x{reason:X2}");
            }
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            _state.OnConnectError($"{client.Name}: {exception.GetType().Name}: {exception.Message}");
        }
    }

    // Runs trials on one subscriber/publisher pair until every trial is taken, the run is cancelled or a connection is gone.
    private async Task RunLaneAsync(RouteClient subscriber, RouteClient publisher, string lane, string prefix, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested && subscriber.IsConnected && publisher.IsConnected)
        {
            var trial = Interlocked.Increment(ref _nextTrial) - 1;
            if (trial >= options.Trials)
            {
                return;
            }

            var topic = $"{prefix}/{trial}";
            try
            {
                var outcome = options.Retained
                    ? await RunRetainedTrialAsync(subscriber, publisher, lane, topic, trial, cancellationToken).ConfigureAwait(false)
                    : await RunTrialAsync(subscriber, publisher, lane, topic, trial, cancellationToken).ConfigureAwait(false);
                Count(outcome, trial);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception)
            {
                _state.Report($"trial {trial} ({lane}): {exception.GetType().Name}: {exception.Message}");
                Count(Outcome.Failed, trial);
            }
        }
    }

    private async Task<Outcome> RunTrialAsync(RouteClient subscriber, RouteClient publisher, string lane, string topic, long trial, CancellationToken cancellationToken)
    {
        var delivered = subscriber.ExpectDelivery(trial);
        var subAck = await SubscribeAsync(subscriber, topic, cancellationToken).ConfigureAwait(false);
        if (subAck is null)
        {
            return Outcome.Failed;
        }

        var acknowledged = publisher.PublishAsync(topic, trial, retain: false, options.ConnectTimeout, cancellationToken);
        var outcome = await AwaitDeliveryAsync(delivered, subAck.Value, trial, $"{lane}, published at SUBACK", cancellationToken).ConfigureAwait(false);
        var (reason, _) = await acknowledged.ConfigureAwait(false);
        if (reason >= 0x80)
        {
            _state.Report($"trial {trial}: publish refused: 0x{reason:X2}");
            outcome = Outcome.Failed;
        }

        await subscriber.UnsubscribeAsync(topic, options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
        return outcome;
    }

    private async Task<Outcome> RunRetainedTrialAsync(RouteClient subscriber, RouteClient publisher, string lane, string topic, long trial, CancellationToken cancellationToken)
    {
        var (reason, pubAck) = await publisher.PublishAsync(topic, trial, retain: true, options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
        if (reason >= 0x80)
        {
            _state.Report($"trial {trial}: retained publish refused: 0x{reason:X2}");
            return Outcome.Failed;
        }

        var delivered = subscriber.ExpectDelivery(trial);
        var outcome = await SubscribeAsync(subscriber, topic, cancellationToken).ConfigureAwait(false) is null
            ? Outcome.Failed
            : await AwaitDeliveryAsync(delivered, pubAck, trial, $"{lane}, subscribed at the retained publish's PUBACK", cancellationToken).ConfigureAwait(false);

        // Unsubscribed first, so that the clearing publish is not delivered to it.
        await subscriber.UnsubscribeAsync(topic, options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
        var (cleared, _) = await publisher.PublishAsync(topic, trial: null, retain: true, options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
        if (cleared >= 0x80)
        {
            _state.Report($"trial {trial}: clearing the retained message refused: 0x{cleared:X2}");
        }

        return outcome;
    }

    // Subscribes at QoS 1 and records SUBSCRIBE -> SUBACK; returns when the SUBACK was read, or null when it refused.
    private async Task<long?> SubscribeAsync(RouteClient subscriber, string topic, CancellationToken cancellationToken)
    {
        var sent = Stopwatch.GetTimestamp();
        var granted = await subscriber.SubscribeAsync(topic, 1, options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
        var subAck = subscriber.SubAckTimestamp;
        if (granted >= 0x80)
        {
            _state.Report($"subscribe {topic} refused: 0x{granted:X2}");
            return null;
        }

        lock (_lock)
        {
            _subAck.Record((long)((subAck - sent) * NanosPerTick));
        }

        return subAck;
    }

    // Waits for the trial's message until the trial timeout after `from`; records from -> delivered.
    private async Task<Outcome> AwaitDeliveryAsync(Task<long> delivered, long from, long trial, string what, CancellationToken cancellationToken)
    {
        var remaining = options.TrialTimeout - Stopwatch.GetElapsedTime(from);
        try
        {
            var at = await delivered.WaitAsync(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
            lock (_lock)
            {
                _route.Record((long)((at - from) * NanosPerTick));
            }

            return Outcome.Delivered;
        }
        catch (TimeoutException)
        {
            _state.Report($"trial {trial} missed: {what}, nothing arrived within {options.TrialTimeout.TotalSeconds:F1} s");
            return Outcome.Missed;
        }
    }

    private void Count(Outcome outcome, long trial)
    {
        switch (outcome)
        {
            case Outcome.Delivered:
                Interlocked.Increment(ref _delivered);
                break;
            case Outcome.Missed:
                Interlocked.Increment(ref _misses);
                lock (_lock)
                {
                    if (_missedTrials.Count < MaxMissedTrials)
                    {
                        _missedTrials.Add(trial);
                    }
                }

                break;
            default:
                Interlocked.Increment(ref _failed);
                break;
        }

        var now = Stopwatch.GetTimestamp();
        long last;
        while ((last = Volatile.Read(ref _lastOutcome)) < now && Interlocked.CompareExchange(ref _lastOutcome, now, last) != last)
        {
        }
    }

    private async Task ReportProgressAsync(long start, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var last = 0;
        var lastTime = start;
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                var now = Stopwatch.GetTimestamp();
                var done = Volatile.Read(ref _delivered) + Volatile.Read(ref _misses) + Volatile.Read(ref _failed);
                log.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"[{Stopwatch.GetElapsedTime(start, now).TotalSeconds,6:F1}s] trials {(done - last) / Stopwatch.GetElapsedTime(lastTime, now).TotalSeconds,8:N1}/s  " +
                    $"done {done:N0}/{options.Trials:N0}  misses {Volatile.Read(ref _misses):N0}  failed {Volatile.Read(ref _failed):N0}  " +
                    $"dropped {_state.Disconnects:N0}"));
                last = done;
                lastTime = now;
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private BenchResult BuildResult(string runId, int lanes, int subscribers, int publishers, double seconds, double cpu)
    {
        var trials = _delivered + _misses + _failed;
        var exitCode = _state.ConnectErrors > 0 ? 2 : _state.Disconnects > 0 ? 3 : _misses + _failed > 0 ? 4 : 0;
        RouteResult route;
        lock (_lock)
        {
            route = new RouteResult
            {
                Retained = options.Retained,
                Requested = options.Trials,
                Concurrency = lanes,
                TrialTimeoutSeconds = options.TrialTimeout.TotalSeconds,
                Trials = trials,
                Delivered = _delivered,
                Misses = _misses,
                Failed = _failed,
                Seconds = seconds,
                TrialsPerSecond = seconds > 0 ? trials / seconds : 0,
                RouteMs = LatencySummary.FromNanoseconds(_route),
                SubAckMs = LatencySummary.FromNanoseconds(_subAck),
                MissedTrials = [.. _missedTrials],
            };
        }

        return new BenchResult
        {
            Scenario = options.Scenario,
            RunId = runId,
            Broker = string.Join(",", options.Hosts),
            Protocol = options.ProtocolName,
            Qos = 1,
            Publishers = lanes,
            PublishersRunning = publishers,
            Subscribers = lanes,
            SubscribersRunning = subscribers,
            Size = options.Size,
            Route = route,
            ConnectErrors = _state.ConnectErrors,
            Disconnects = _state.Disconnects,
            ToolCpuCores = cpu,
            ExitCode = exitCode,
            Errors = _state.ErrorSamples,
        };
    }
}
