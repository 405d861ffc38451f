using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using MQTTnet;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// The <c>pairs</c> scenario: connect N publisher/subscriber pairs, publish for the warm-up and
/// the measured interval, drain, and turn the counters into a <see cref="BenchResult"/>.
/// </summary>
internal sealed class PairsScenario(BenchOptions options, TextWriter log)
{
    private const int ConnectParallelism = 16;
    private static readonly TimeSpan QuietDrain = TimeSpan.FromSeconds(1);

    private readonly MqttClientFactory _factory = new();
    private readonly RunState _state = new(log);
    private volatile string _phase = "connect";

    /// <summary>Runs the scenario; cancelling ends the current phase early and still produces a result.</summary>
    public async Task<BenchResult> RunAsync(CancellationToken cancellationToken)
    {
        var runId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var pairs = new BenchPair[options.Pairs];
        for (var i = 0; i < pairs.Length; i++)
        {
            pairs[i] = new BenchPair(i, $"bench/{runId}/{i}", options, _state);
        }

        log.WriteLine(
            $"run {runId}: connecting {pairs.Length} subscribers and {pairs.Length} publishers to {options.Host}:{options.Port} " +
            $"(MQTT {options.ProtocolName}, QoS {(int)options.Qos})");
        try
        {
            await Parallel.ForEachAsync(
                pairs,
                new ParallelOptions { MaxDegreeOfParallelism = ConnectParallelism, CancellationToken = cancellationToken },
                (pair, ct) => new ValueTask(pair.ConnectAsync(_factory, $"bench-{runId}", ct))).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _state.Report("cancelled while connecting");
        }

        var running = Array.FindAll(pairs, p => p.Ready);
        if (running.Length == 0 || cancellationToken.IsCancellationRequested)
        {
            await DisconnectAllAsync(pairs).ConfigureAwait(false);
            return BuildResult(runId, pairs, running, default, default, 0, 0);
        }

        if (running.Length < pairs.Length)
        {
            log.WriteLine($"running with {running.Length} of {pairs.Length} pairs");
        }

        using var stopPublishing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var stopProgress = new CancellationTokenSource();
        var start = Stopwatch.GetTimestamp();
        var progress = ReportProgressAsync(running, start, stopProgress.Token);

        // At a fixed rate each pair gets an equal share, its start offset so the pairs do not send in lockstep.
        var ticksPerMessage = options.Rate > 0 ? Stopwatch.Frequency * running.Length / options.Rate : 0;
        var loops = new Task[running.Length];
        for (var i = 0; i < running.Length; i++)
        {
            var offset = (long)(ticksPerMessage * i / running.Length);
            var pair = running[i];
            loops[i] = Task.Run(() => pair.PublishLoopAsync(start + offset, ticksPerMessage, stopPublishing.Token), CancellationToken.None);
        }

        _phase = "warmup";
        await DelayAsync(options.Warmup, cancellationToken).ConfigureAwait(false);

        using var process = Process.GetCurrentProcess();
        var first = Snapshot.Take(running, process);
        _state.MeasureStartTicks = first.Timestamp;
        _phase = "measure";
        await DelayAsync(options.Duration, cancellationToken).ConfigureAwait(false);
        var second = Snapshot.Take(running, process);

        _phase = "drain";
        await stopPublishing.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(loops).ConfigureAwait(false);
        await DrainAsync(running).ConfigureAwait(false);

        _phase = "disconnect";
        await stopProgress.CancelAsync().ConfigureAwait(false);
        await progress.ConfigureAwait(false);
        await DisconnectAllAsync(pairs).ConfigureAwait(false);

        var seconds = Stopwatch.GetElapsedTime(first.Timestamp, second.Timestamp).TotalSeconds;
        var cpu = seconds > 0 ? (second.Cpu - first.Cpu).TotalSeconds / seconds : 0;
        return BuildResult(runId, pairs, running, first, second, seconds, cpu);
    }

    private async Task DrainAsync(BenchPair[] running)
    {
        // Wait for outstanding acknowledgements, then for deliveries to catch up with what was
        // accepted, giving up once nothing has arrived for a while (lost messages never will).
        var timeout = options.ConnectTimeout;
        foreach (var pair in running)
        {
            if (!await pair.WaitForInFlightAsync(timeout).ConfigureAwait(false))
            {
                _state.Report($"pair {pair.Index}: acknowledgements still outstanding after {timeout.TotalSeconds:F0} s");
            }
        }

        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var lastUnique = -1L;
        var lastChange = Stopwatch.GetTimestamp();
        while (Stopwatch.GetTimestamp() < deadline)
        {
            long unique = 0;
            long published = 0;
            foreach (var pair in running)
            {
                unique += pair.Tracker.Unique;
                published += pair.Published;
            }

            if (unique >= published)
            {
                return;
            }

            if (unique != lastUnique)
            {
                lastUnique = unique;
                lastChange = Stopwatch.GetTimestamp();
            }
            else if (Stopwatch.GetElapsedTime(lastChange) > QuietDrain)
            {
                return;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    private async Task DisconnectAllAsync(BenchPair[] pairs)
    {
        _state.Closing = true;
        await Parallel.ForEachAsync(
            pairs,
            new ParallelOptions { MaxDegreeOfParallelism = ConnectParallelism },
            (pair, _) => new ValueTask(pair.DisconnectAsync(_factory, TimeSpan.FromSeconds(2)))).ConfigureAwait(false);
    }

    private async Task ReportProgressAsync(BenchPair[] running, long start, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var last = Snapshot.Take(running, null);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                var now = Snapshot.Take(running, null);
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

    private BenchResult BuildResult(string runId, BenchPair[] pairs, BenchPair[] running, Snapshot first, Snapshot second, double seconds, double cpu)
    {
        var latency = new LatencyHistogram();
        long lost = 0, duplicates = 0, outOfOrder = 0, malformed = 0, delivered = 0, published = 0, publishErrors = 0, stalls = 0;
        foreach (var pair in running)
        {
            latency.Add(pair.Latency);
            lost += pair.Tracker.Lost(pair.Published);
            duplicates += pair.Tracker.Duplicates;
            outOfOrder += pair.Tracker.OutOfOrder;
            malformed += pair.Malformed + pair.Tracker.Invalid;
            delivered += pair.Tracker.Delivered;
            published += pair.Published;
            publishErrors += pair.PublishErrors;
            stalls += pair.Stalls;
        }

        var exitCode = _state.ConnectErrors > 0 || running.Length == 0 ? 2 : _state.Disconnects > 0 ? 3 : 0;
        return new BenchResult
        {
            Scenario = options.Scenario,
            RunId = runId,
            Broker = $"{options.Host}:{options.Port}",
            Protocol = options.ProtocolName,
            Qos = (int)options.Qos,
            Pairs = pairs.Length,
            PairsRunning = running.Length,
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
            Lost = lost,
            Duplicates = duplicates,
            OutOfOrder = outOfOrder,
            Malformed = malformed,
            ConnectErrors = _state.ConnectErrors,
            Disconnects = _state.Disconnects,
            PublishErrors = publishErrors,
            WindowStalls = stalls,
            ToolCpuCores = cpu,
            ExitCode = exitCode,
            Errors = _state.ErrorSamples,
        };
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

    /// <summary>Totals over all running pairs at one instant.</summary>
    private readonly record struct Snapshot(long Timestamp, long Delivered, long Published, long PublishErrors, long Stalls, TimeSpan Cpu)
    {
        public static Snapshot Take(BenchPair[] running, Process? process)
        {
            long delivered = 0, published = 0, errors = 0, stalls = 0;
            foreach (var pair in running)
            {
                delivered += pair.Tracker.Delivered;
                published += pair.Published;
                errors += pair.PublishErrors;
                stalls += pair.Stalls;
            }

            var cpu = TimeSpan.Zero;
            if (process is not null)
            {
                process.Refresh();
                cpu = process.TotalProcessorTime;
            }

            return new Snapshot(Stopwatch.GetTimestamp(), delivered, published, errors, stalls, cpu);
        }
    }
}
