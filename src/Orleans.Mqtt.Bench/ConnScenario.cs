using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// The conn scenario: open N idle connections at a target rate (optionally persistent sessions with one
/// subscription each), hold them, close them. Beyond <see cref="BenchOptions.ConnectionsPerWorker"/>
/// connections the run is split over worker processes (a process may hold at most 20,000 open files here),
/// each started as this program with <c>--worker</c>; the parent merges their JSON results.
/// </summary>
internal sealed class ConnScenario(BenchOptions options, IReadOnlyList<string> args, TextWriter log)
{
    // Options the parent sets itself for each worker.
    private static readonly string[] ParentOnly = ["--workers", "--json", "--broker-pid", "--connections", "--connection-offset", "--run-id", "--connect-rate", "--inflight", "--check"];
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);

    private readonly RunState _state = new(log);
    private readonly LatencyHistogram _connAck = new();
    private readonly Lock _connAckLock = new();
    private int _connected;
    private int _failed;
    private long _lastCompleted;

    /// <summary>Runs the scenario, in this process or over worker processes.</summary>
    public Task<BenchResult> RunAsync(CancellationToken cancellationToken)
    {
        return !options.IsWorker && options.WorkerCount > 1 ? RunWorkersAsync(cancellationToken) : RunHereAsync(cancellationToken);
    }

    private async Task<BenchResult> RunHereAsync(CancellationToken cancellationToken)
    {
        var runId = options.RunId ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var prefix = options.Topic ?? $"bench/{runId}";
        var endpoints = await Endpoints.ResolveAsync(options, cancellationToken).ConfigureAwait(false);
        var clients = new IdleClient[options.Connections];
        for (var i = 0; i < clients.Length; i++)
        {
            clients[i] = new IdleClient(options.ConnectionOffset + i, options, _state);
        }

        var label = options.IsWorker ? $"worker {options.WorkerIndex}: " : "";
        log.WriteLine(
            $"{label}run {runId} conn: {clients.Length:N0} connections to {string.Join(",", options.Hosts)} (MQTT {options.ProtocolName}, " +
            $"{(options.SessionExpiry > 0 ? "persistent sessions" : "clean start")}, {options.Subscriptions} subscription(s) each" +
            $"{(endpoints.SpreadsSources ? ", sources 127.0.0.1-254" : "")})");

        var rssBefore = BrokerRss();
        using var process = Process.GetCurrentProcess();
        var cpuStart = process.TotalProcessorTime;
        var brokerCpuStart = BrokerCpu();
        using var stopBackground = new CancellationTokenSource();
        var start = Stopwatch.GetTimestamp();
        var startUnix = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var progress = ReportProgressAsync(label, start, stopBackground.Token);
        var keepAlive = KeepAlive.RunAsync(() => clients, options.KeepAlive, stopBackground.Token);

        try
        {
            await ConnectAllAsync(clients, endpoints, runId, prefix, start, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _state.Report("cancelled while connecting");
        }

        var connectSeconds = _connected > 0 ? Stopwatch.GetElapsedTime(start, Volatile.Read(ref _lastCompleted)).TotalSeconds : 0;
        var endUnix = startUnix + (long)(connectSeconds * 1000);

        // CPU per connect while connecting: the broker's, and the tool's own, which shares the machine with it.
        process.Refresh();
        var toolConnectCpu = process.TotalProcessorTime - cpuStart;
        var brokerConnectCpu = BrokerCpu() - brokerCpuStart;
        var check = options.Check > 0 && !cancellationToken.IsCancellationRequested
            ? await CheckRoutesAsync(clients, endpoints, runId, prefix, cancellationToken).ConfigureAwait(false)
            : (Checked: 0, Delivered: 0, Missed: 0);
        if (options.Check > 0)
        {
            log.WriteLine($"{label}route check: {check.Checked:N0} published, {check.Delivered:N0} delivered, {check.Missed:N0} missed");
        }

        log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{label}connected {_connected:N0}, failed {_failed:N0} in {connectSeconds:F2} s; holding"));

        long rssHeld = 0, rssEnd = 0;
        var held = Stopwatch.GetTimestamp();
        if (options.IsWorker)
        {
            // The parent samples memory once every worker is ready, then says when to close.
            await Console.Out.WriteLineAsync("ready").ConfigureAwait(false);
            await Console.Out.FlushAsync(cancellationToken).ConfigureAwait(false);
            await Console.In.ReadLineAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            if (options.BrokerPids.Count > 0)
            {
                await DelayAsync(Settle < options.Duration ? Settle : options.Duration / 2, cancellationToken).ConfigureAwait(false);
                rssHeld = BrokerRss();
            }

            await DelayAsync(options.Duration - Stopwatch.GetElapsedTime(held), cancellationToken).ConfigureAwait(false);
            rssEnd = BrokerRss();
        }

        var heldSeconds = Stopwatch.GetElapsedTime(held).TotalSeconds;
        _state.Closing = true;
        await stopBackground.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(progress, keepAlive).ConfigureAwait(false);
        await Parallel.ForEachAsync(
            clients,
            new ParallelOptions { MaxDegreeOfParallelism = 64 },
            (client, _) => new ValueTask(client.CloseAsync(TimeSpan.FromSeconds(2)))).ConfigureAwait(false);
        process.Refresh();
        var cpu = (process.TotalProcessorTime - cpuStart).TotalSeconds / Math.Max(0.001, Stopwatch.GetElapsedTime(start).TotalSeconds);

        var connect = new ConnectResult
        {
            Requested = clients.Length,
            Connected = _connected,
            Failed = _failed,
            TargetRate = options.ConnectRate,
            AchievedRate = connectSeconds > 0 ? _connected / connectSeconds : 0,
            ConnectSeconds = connectSeconds,
            StartUnixMs = startUnix,
            EndUnixMs = endUnix,
            Persistent = options.SessionExpiry > 0,
            Subscriptions = options.Subscriptions,
            HeldSeconds = heldSeconds,
            ConnAckMs = LatencySummary.FromNanoseconds(_connAck),
            ConnAckHistogram = options.IsWorker ? _connAck.Export() : null,
            SourceAddresses = endpoints.SpreadsSources ? Math.Min(Endpoints.LoopbackSources, clients.Length) : 1,
            BrokerRssBefore = rssBefore,
            BrokerRssHeld = rssHeld,
            BrokerBytesPerConnection = PerConnection(rssHeld, rssBefore, _connected),
            BrokerRssEnd = rssEnd,
            BrokerBytesPerConnectionEnd = PerConnection(rssEnd, rssBefore, _connected),
            BrokerCpuMicrosPerConnect = options.BrokerPids.Count > 0 && _connected > 0 ? brokerConnectCpu.TotalMicroseconds / _connected : 0,
            ToolCpuMicrosPerConnect = _connected > 0 ? toolConnectCpu.TotalMicroseconds / _connected : 0,
            Checked = check.Checked,
            CheckDelivered = check.Delivered,
            CheckMissed = check.Missed,
        };
        return Result(runId, connect, cpu, _state.ConnectErrors, _state.Disconnects, _state.ErrorSamples);
    }

    // Publishes one QoS 1 message to a topic of each of --check sampled filters, one at a time, from a connection on the
    // endpoint after this process's first connection's, and waits for the subscribed connection to get it. The sample is
    // drawn with a fixed seed per process, so a rerun checks the same filters.
    private async Task<(int Checked, int Delivered, int Missed)> CheckRoutesAsync(
        IdleClient[] clients, Endpoints endpoints, string runId, string prefix, CancellationToken cancellationToken)
    {
        var publisher = new RouteClient(0, "route checker", options, _state);
        var connect = MqttWire.Connect(options.ProtocolLevel, $"bench-{runId}-check{options.WorkerIndex}", true, 0, options.KeepAlive, options.UserName, options.Password);
        var first = options.ConnectionOffset;
        if (await publisher.ConnectAsync(endpoints.Broker(first + 1), endpoints.Source(first + 1), connect, options.ConnectTimeout, cancellationToken).ConfigureAwait(false) != 0)
        {
            _state.Report("route check: the checking connection was refused");
            return (0, 0, options.Check);
        }

        var random = new Random(options.ConnectionOffset + 1);
        int published = 0, delivered = 0, missed = 0;
        var pattern = options.EffectiveFilterPattern;
        try
        {
            for (var trial = 0; trial < options.Check && !cancellationToken.IsCancellationRequested; trial++)
            {
                var client = clients[random.Next(clients.Length)];
                var topic = FilterPattern.TopicFor(FilterPattern.Expand(pattern, prefix, client.Index, random.Next(options.Subscriptions), options.Subscriptions));
                var delivery = client.ExpectDelivery(trial);
                try
                {
                    var (reason, _) = await publisher.PublishAsync(topic, trial, retain: false, options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
                    published++;
                    if (reason >= 0x80)
                    {
                        _state.Report($"route check: PUBACK 0x{reason:X2} for {topic}");
                    }

                    await delivery.WaitAsync(options.TrialTimeout, cancellationToken).ConfigureAwait(false);
                    delivered++;
                }
                catch (Exception exception) when (exception is TimeoutException or IOException)
                {
                    missed++;
                    _state.Report($"route check: nothing delivered on {topic} to connection {client.Index} ({exception.Message})");
                }
            }
        }
        finally
        {
            await publisher.CloseAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }

        return (published, delivered, missed);
    }

    private async Task ConnectAllAsync(IdleClient[] clients, Endpoints endpoints, string runId, string prefix, long start, CancellationToken cancellationToken)
    {
        var ticksPerConnect = options.ConnectRate > 0 ? Stopwatch.Frequency / options.ConnectRate : 0;
        var millisecond = Stopwatch.Frequency / 1000;
        using var inflight = new SemaphoreSlim(options.Inflight);
        var tasks = new Task[clients.Length];
        for (var i = 0; i < clients.Length; i++)
        {
            if (ticksPerConnect > 0)
            {
                // Sleep only when a whole millisecond ahead of schedule; otherwise catch up at once.
                var wait = start + (long)(i * ticksPerConnect) - Stopwatch.GetTimestamp();
                if (wait >= millisecond)
                {
                    await Task.Delay((int)(wait / millisecond), cancellationToken).ConfigureAwait(false);
                }
            }

            await inflight.WaitAsync(cancellationToken).ConfigureAwait(false);
            tasks[i] = ConnectOneAsync(clients[i], endpoints, runId, prefix, inflight, cancellationToken);
        }

        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    private async Task ConnectOneAsync(IdleClient client, Endpoints endpoints, string runId, string prefix, SemaphoreSlim inflight, CancellationToken cancellationToken)
    {
        try
        {
            var index = client.Index;
            var packet = MqttWire.Connect(
                options.ProtocolLevel, $"bench-{runId}-c{index}", options.SessionExpiry == 0, options.SessionExpiry, options.KeepAlive, options.UserName, options.Password);
            var begin = Stopwatch.GetTimestamp();
            var reason = await client.ConnectAsync(endpoints.Broker(index), endpoints.Source(index), packet, options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
            var connAck = Stopwatch.GetTimestamp();
            if (reason != 0)
            {
                Interlocked.Increment(ref _failed);
                _state.OnConnectError($"CONNACK 0x{reason:X2}");
                return;
            }

            for (var from = 0; from < options.Subscriptions; from += options.SubscribeBatch)
            {
                var filters = new string[Math.Min(options.SubscribeBatch, options.Subscriptions - from)];
                for (var f = 0; f < filters.Length; f++)
                {
                    filters[f] = FilterPattern.Expand(options.EffectiveFilterPattern, prefix, index, from + f, options.Subscriptions);
                }

                var granted = await client.SubscribeAsync(filters, 1, options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
                if (granted >= 0x80)
                {
                    Interlocked.Increment(ref _failed);
                    _state.OnConnectError($"SUBACK 0x{granted:X2}");
                    return;
                }
            }

            lock (_connAckLock)
            {
                _connAck.Record((long)Stopwatch.GetElapsedTime(begin, connAck).TotalNanoseconds);
            }

            var now = Stopwatch.GetTimestamp();
            long last;
            while ((last = Volatile.Read(ref _lastCompleted)) < now && Interlocked.CompareExchange(ref _lastCompleted, now, last) != last)
            {
            }

            Interlocked.Increment(ref _connected);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref _failed);
            _state.OnConnectError($"{exception.GetType().Name}: {exception.Message}");
        }
        finally
        {
            inflight.Release();
        }
    }

    private async Task ReportProgressAsync(string label, long start, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var last = 0;
        var lastTime = start;
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                var now = Stopwatch.GetTimestamp();
                var connected = Volatile.Read(ref _connected);
                log.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"{label}[{Stopwatch.GetElapsedTime(start, now).TotalSeconds,6:F1}s] connected {(connected - last) / Stopwatch.GetElapsedTime(lastTime, now).TotalSeconds,8:N0}/s  " +
                    $"total {connected:N0}/{options.Connections:N0}  failed {Volatile.Read(ref _failed):N0}  dropped {_state.Disconnects:N0}"));
                last = connected;
                lastTime = now;
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task<BenchResult> RunWorkersAsync(CancellationToken cancellationToken)
    {
        var runId = options.RunId ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var count = options.WorkerCount;
        var directory = Directory.CreateTempSubdirectory("mqtt-bench-workers-");
        log.WriteLine($"run {runId} conn: {options.Connections:N0} connections over {count} worker processes");
        var rssBefore = BrokerRss();
        var workers = new List<(Process Process, string Json, Task Ready)>();
        try
        {
            var offset = 0;
            for (var w = 0; w < count; w++)
            {
                var share = options.Connections / count + (w < options.Connections % count ? 1 : 0);
                var json = Path.Combine(directory.FullName, $"worker-{w}.json");
                var worker = StartWorker(w, runId, share, offset, json);
                workers.Add((worker, json, WaitForReadyAsync(worker, cancellationToken)));
                offset += share;
            }

            await Task.WhenAll(workers.Select(w => w.Ready)).ConfigureAwait(false);
            log.WriteLine("every worker has connected; holding");
            var held = Stopwatch.GetTimestamp();
            long rssHeld = 0;
            if (options.BrokerPids.Count > 0)
            {
                await DelayAsync(Settle < options.Duration ? Settle : options.Duration / 2, cancellationToken).ConfigureAwait(false);
                rssHeld = BrokerRss();
            }

            await DelayAsync(options.Duration - Stopwatch.GetElapsedTime(held), cancellationToken).ConfigureAwait(false);
            var rssEnd = BrokerRss();
            var heldSeconds = Stopwatch.GetElapsedTime(held).TotalSeconds;
            foreach (var (worker, _, _) in workers)
            {
                await worker.StandardInput.WriteLineAsync("close").ConfigureAwait(false);
                worker.StandardInput.Close();
            }

            foreach (var (worker, _, _) in workers)
            {
                await worker.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            }

            var results = new List<BenchResult>();
            var errors = new List<string>();
            foreach (var (_, json, _) in workers)
            {
                if (File.Exists(json))
                {
                    results.Add(JsonSerializer.Deserialize(await File.ReadAllTextAsync(json, CancellationToken.None).ConfigureAwait(false), BenchJsonContext.Default.BenchResult)!);
                }
                else
                {
                    errors.Add($"a worker wrote no result ({json})");
                }
            }

            return Merge(runId, results, errors, heldSeconds, (rssBefore, rssHeld, rssEnd), count);
        }
        finally
        {
            foreach (var (worker, _, _) in workers)
            {
                if (!worker.HasExited)
                {
                    worker.Kill();
                }

                worker.Dispose();
            }

            directory.Delete(recursive: true);
        }
    }

    private Process StartWorker(int index, string runId, int connections, int offset, string json)
    {
        var start = new ProcessStartInfo
        {
            FileName = Environment.ProcessPath!,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        // Under "dotnet tool.dll" the process is the host; the worker needs the assembly too.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
        {
            start.ArgumentList.Add(typeof(ConnScenario).Assembly.Location);
        }

        for (var i = 0; i < args.Count; i++)
        {
            if (Array.IndexOf(ParentOnly, args[i]) >= 0)
            {
                i++;
                continue;
            }

            start.ArgumentList.Add(args[i]);
        }

        // Each worker gets its share of the connections, of the target rate and of the connects in progress.
        var c = CultureInfo.InvariantCulture;
        var workers = options.WorkerCount;
        foreach (var extra in (string[])[
                     "--worker", index.ToString(c), "--workers", "1", "--run-id", runId, "--json", json,
                     "--connections", connections.ToString(c), "--connection-offset", offset.ToString(c),
                     "--connect-rate", (options.ConnectRate / workers).ToString("R", c),
                     "--inflight", Math.Max(1, options.Inflight / workers).ToString(c),
                     "--check", (options.Check / workers + (index < options.Check % workers ? 1 : 0)).ToString(c)])
        {
            start.ArgumentList.Add(extra);
        }

        return Process.Start(start) ?? throw new InvalidOperationException("could not start a worker process");
    }

    private static async Task WaitForReadyAsync(Process worker, CancellationToken cancellationToken)
    {
        while (await worker.StandardOutput.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (line == "ready")
            {
                // Keep draining the rest of its output so the worker never blocks on a full pipe.
                _ = worker.StandardOutput.ReadToEndAsync(CancellationToken.None);
                return;
            }
        }
    }

    /// <summary>Merges worker results: counts add up, the connect interval spans all workers, histograms merge.</summary>
    internal BenchResult Merge(string runId, IReadOnlyList<BenchResult> results, List<string> errors, double heldSeconds, (long Before, long Held, long End) rss, int workers)
    {
        var histogram = new LatencyHistogram();
        long start = long.MaxValue, end = 0;
        int requested = 0, connected = 0, failed = 0, connectErrors = 0, disconnects = 0, sources = 0, checkedCount = 0, checkDelivered = 0, checkMissed = 0;
        double cpu = 0;
        foreach (var result in results)
        {
            var connect = result.Connect!;
            requested += connect.Requested;
            connected += connect.Connected;
            failed += connect.Failed;
            sources = Math.Max(sources, connect.SourceAddresses);
            checkedCount += connect.Checked;
            checkDelivered += connect.CheckDelivered;
            checkMissed += connect.CheckMissed;
            connectErrors += result.ConnectErrors;
            disconnects += result.Disconnects;
            cpu += result.ToolCpuCores;
            start = Math.Min(start, connect.StartUnixMs);
            end = Math.Max(end, connect.EndUnixMs);
            foreach (var bucket in connect.ConnAckHistogram ?? [])
            {
                histogram.AddBucket((int)bucket[0], bucket[1]);
            }

            foreach (var error in result.Errors)
            {
                if (errors.Count < 10 && !errors.Contains(error))
                {
                    errors.Add(error);
                }
            }
        }

        var seconds = end > start ? (end - start) / 1000.0 : 0;
        var merged = new ConnectResult
        {
            Requested = requested,
            Connected = connected,
            Failed = failed,
            TargetRate = options.ConnectRate,
            AchievedRate = seconds > 0 ? connected / seconds : 0,
            ConnectSeconds = seconds,
            StartUnixMs = start == long.MaxValue ? 0 : start,
            EndUnixMs = end,
            Persistent = options.SessionExpiry > 0,
            Subscriptions = options.Subscriptions,
            HeldSeconds = heldSeconds,
            ConnAckMs = LatencySummary.FromNanoseconds(histogram),
            Workers = workers,
            SourceAddresses = sources,
            BrokerRssBefore = rss.Before,
            BrokerRssHeld = rss.Held,
            BrokerBytesPerConnection = PerConnection(rss.Held, rss.Before, connected),
            BrokerRssEnd = rss.End,
            BrokerBytesPerConnectionEnd = PerConnection(rss.End, rss.Before, connected),
            Checked = checkedCount,
            CheckDelivered = checkDelivered,
            CheckMissed = checkMissed,
        };
        if (results.Count < workers)
        {
            connectErrors += options.Connections - requested;
        }

        return Result(runId, merged, cpu, connectErrors, disconnects, errors);
    }

    // The summed RSS of the broker processes named by --broker-pid; 0 when none are.
    private TimeSpan BrokerCpu() => options.BrokerPids.Count > 0 ? ProcessMemory.CpuTime(options.BrokerPids) : TimeSpan.Zero;

    private long BrokerRss() => options.BrokerPids.Count > 0 ? ProcessMemory.RssBytes(options.BrokerPids) : 0;

    private static double PerConnection(long rss, long before, int connected) => rss > 0 && connected > 0 ? (rss - before) / (double)connected : 0;

    private BenchResult Result(string runId, ConnectResult connect, double cpu, int connectErrors, int disconnects, IReadOnlyList<string> errors)
    {
        return new BenchResult
        {
            Scenario = options.Scenario,
            RunId = runId,
            Broker = string.Join(",", options.Hosts),
            Protocol = options.ProtocolName,
            Qos = 1,
            Connect = connect,
            ConnectErrors = connectErrors,
            Disconnects = disconnects,
            ToolCpuCores = cpu,
            ExitCode = connectErrors > 0 || connect.Connected == 0 ? 2 : disconnects > 0 ? 3 : connect.CheckMissed > 0 || connect.Checked < options.Check ? 4 : 0,
            Errors = errors,
        };
    }

    private static async Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        if (delay <= TimeSpan.Zero)
        {
            return;
        }

        try
        {
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
