using System.Diagnostics;
using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

/// <summary>Short real runs of the load tool against mosquitto on a free loopback port.</summary>
public sealed class ScenarioTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public async Task FanoutDeliversEveryMessageToEverySubscriber(int qos)
    {
        await using var broker = await MosquittoBroker.StartAsync();
        var result = await RunMessagesAsync(
            "fanout", "--port", $"{broker.Port}", "--subscribers", "20", "--qos", $"{qos}", "--window", "20", "--duration", "1", "--warmup", "0.2");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(20, result.SubscribersRunning);
        Assert.True(result.PublishedTotal > 0);
        Assert.Equal(result.PublishedTotal * 20, result.DeliveredTotal);
        Assert.Equal(0, result.Lost);
        Assert.Equal(0, result.Duplicates);
        Assert.Equal(0, result.OutOfOrder);
        Assert.True(result.LatencyMs.Count > 0);
    }

    [Fact]
    public async Task AtAFixedRateLatencyFromTheActualSendIsNeverAboveLatencyFromTheSchedule()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        var result = await RunMessagesAsync(
            "p2p", "--port", $"{broker.Port}", "--pairs", "2", "--qos", "1", "--rate", "400", "--duration", "1", "--warmup", "0.2");

        Assert.Equal(0, result.ExitCode);
        Assert.True(result.LatencyMs.Count > 0);
        Assert.Equal(result.LatencyMs.Count, result.SendLatencyMs.Count);

        // Each message is sent at or after its scheduled time, so every percentile from the send is at most the
        // same percentile from the schedule.
        Assert.InRange(result.SendLatencyMs.P50, 0, result.LatencyMs.P50);
        Assert.InRange(result.SendLatencyMs.P99, 0, result.LatencyMs.P99);
        Assert.InRange(result.SendLatencyMs.Max, 0, result.LatencyMs.Max);
    }

    [Fact]
    public async Task FaninSpreadsOverTheGroupWithoutLossOrDuplicates()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        var result = await RunMessagesAsync(
            "fanin", "--port", $"{broker.Port}", "--publishers", "5", "--subscribers", "3", "--qos", "2", "--duration", "1", "--warmup", "0.2");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(3, result.SubscribersRunning);
        Assert.True(result.PublishedTotal > 0);
        Assert.Equal(result.PublishedTotal, result.DeliveredTotal);
        Assert.Equal(0, result.Lost);
        Assert.Equal(0, result.Duplicates);
    }

    [Fact]
    public async Task ConnectionsAreSpreadOverSeveralEndpoints()
    {
        await using var first = await MosquittoBroker.StartAsync();
        await using var second = await MosquittoBroker.StartAsync();
        string[] common = ["--host", $"127.0.0.1:{first.Port},127.0.0.1:{second.Port}", "--topic", "bench/two", "--qos", "1"];

        // Subscriber i and publisher i both use connection i, so each subscriber hears exactly one publisher.
        var (received, pub, pubSeconds) = await SubWhilePubAsync(
            ["sub", .. common, "--subscribers", "2"],
            ["pub", .. common, "--publishers", "2", "--rate", "400", "--duration", "1", "--warmup", "0.5"]);

        Assert.Equal(0, pub.ExitCode);

        // Paced at 400/s from the start of publishing: the schedule can only fall behind and catch up (a stalled
        // machine may send a burst inside the measured second), never run ahead of the whole run's wall time.
        Assert.InRange(pub.PublishedTotal, 1, (long)(400 * pubSeconds) + 2);

        // Had both subscribers used one broker, each would have heard both publishers.
        Assert.True(
            pub.PublishedTotal == received.DeliveredTotal && received.Lost == 0,
            $"published {pub.PublishedTotal}, delivered {received.DeliveredTotal}, lost {received.Lost}, duplicates {received.Duplicates}");
    }

    [Fact]
    public async Task SubCountsWhatASeparatePubRunSends()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        string[] common = ["--port", $"{broker.Port}", "--topic", "bench/split", "--qos", "1"];
        var (received, pub, _) = await SubWhilePubAsync(
            ["sub", .. common, "--subscribers", "2"],
            ["pub", .. common, "--publishers", "3", "--rate", "300", "--duration", "1", "--warmup", "0.5"]);

        Assert.Equal(0, pub.ExitCode);
        Assert.Equal(0, received.ExitCode);
        Assert.Equal(pub.PublishedTotal * 2, received.DeliveredTotal);
        Assert.Equal(0, received.Lost);
        Assert.Equal(0, received.Duplicates);
    }

    [Fact]
    public async Task ConnOpensPersistentSessionsWithASubscriptionEach()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        Assert.True(BenchOptions.TryParse(
            ["conn", "--port", $"{broker.Port}", "--connections", "300", "--connect-rate", "1000", "--session-expiry", "60",
             "--subscriptions", "1", "--duration", "0.5", "--broker-pid", $"{broker.ProcessId}"],
            out var options, out var error), error);

        var result = await new ConnScenario(options, [], TextWriter.Null).RunAsync(CancellationToken.None);

        Assert.Equal(0, result.ExitCode);
        var connect = Assert.IsType<ConnectResult>(result.Connect);
        Assert.Equal(300, connect.Connected);
        Assert.Equal(0, connect.Failed);
        Assert.True(connect.Persistent);
        Assert.Equal(300, connect.ConnAckMs.Count);
        Assert.InRange(connect.AchievedRate, 100, 1500);
        Assert.True(connect.BrokerRssHeld > 0);
        Assert.True(connect.BrokerRssEnd > 0);
        Assert.Equal(254, connect.SourceAddresses);
    }

    [Theory]
    [InlineData("{prefix}/d/{c}/cmd/{i}")]
    [InlineData("{prefix}/t/{n}/+/telemetry")]
    public async Task ConnSubscribesSeveralFiltersEachAndTheRouteCheckGetsEverySampledMessage(string pattern)
    {
        await using var broker = await MosquittoBroker.StartAsync();
        Assert.True(BenchOptions.TryParse(
            ["conn", "--port", $"{broker.Port}", "--connections", "40", "--connect-rate", "0", "--session-expiry", "60",
             "--subscriptions", "5", "--subscribe-batch", "2", "--filter-pattern", pattern, "--check", "25", "--duration", "0.2"],
            out var options, out var error), error);
        var log = new StringWriter();

        var result = await new ConnScenario(options, [], log).RunAsync(CancellationToken.None);

        Assert.Equal(0, result.ExitCode);
        var connect = Assert.IsType<ConnectResult>(result.Connect);
        Assert.Equal(40, connect.Connected);
        Assert.Equal(5, connect.Subscriptions);
        Assert.Equal(25, connect.Checked);
        Assert.Equal(25, connect.CheckDelivered);
        Assert.Equal(0, connect.CheckMissed);
        Assert.Contains("route check: 25 published, 25 delivered, 0 missed", log.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheRouteCheckCountsAMessageNobodyGetsAsAMiss()
    {
        // Two unconnected brokers: the one connection subscribes on the first, the checker publishes on the second.
        await using var first = await MosquittoBroker.StartAsync();
        await using var second = await MosquittoBroker.StartAsync();
        Assert.True(BenchOptions.TryParse(
            ["conn", "--host", $"127.0.0.1:{first.Port},127.0.0.1:{second.Port}", "--connections", "1", "--connect-rate", "0",
             "--subscriptions", "1", "--check", "2", "--trial-timeout", "0.3", "--duration", "0.1"],
            out var options, out var error), error);

        var result = await new ConnScenario(options, [], TextWriter.Null).RunAsync(CancellationToken.None);

        Assert.Equal(4, result.ExitCode);
        Assert.Equal(2, result.Connect!.Checked);
        Assert.Equal(2, result.Connect.CheckMissed);
        Assert.Equal(0, result.Connect.CheckDelivered);
    }

    [Fact]
    public void WorkerResultsMergeIntoOneRun()
    {
        Assert.True(BenchOptions.TryParse(["conn", "--connections", "30000", "--connect-rate", "3000"], out var options, out _));
        var scenario = new ConnScenario(options, [], TextWriter.Null);
        var histogram = new LatencyHistogram();
        histogram.Record(2_000_000);
        BenchResult Worker(int connected, long start, long end) => new()
        {
            Scenario = "conn",
            Connect = new ConnectResult
            {
                Requested = 15_000, Connected = connected, Failed = 15_000 - connected, StartUnixMs = start, EndUnixMs = end,
                ConnAckHistogram = histogram.Export(),
            },
        };

        var merged = scenario.Merge("r", [Worker(15_000, 1000, 6000), Worker(14_990, 1100, 11_000)], [], 5, (100_000_000, 400_000_000, 250_000_000), 2);

        var connect = merged.Connect!;
        Assert.Equal(29_990, connect.Connected);
        Assert.Equal(10, connect.Failed);
        Assert.Equal(10, connect.ConnectSeconds);
        Assert.Equal(2999, connect.AchievedRate);
        Assert.Equal(2, connect.ConnAckMs.Count);
        Assert.Equal(2, connect.Workers);
        Assert.Equal(300_000_000 / 29_990.0, connect.BrokerBytesPerConnection);
        Assert.Equal(150_000_000 / 29_990.0, connect.BrokerBytesPerConnectionEnd);
    }

    private static async Task<BenchResult> RunMessagesAsync(params string[] args) => await RunMessagesAsync(args, CancellationToken.None);

    private static async Task<BenchResult> RunMessagesAsync(string[] args, CancellationToken cancellationToken)
    {
        Assert.True(BenchOptions.TryParse(args, out var options, out var error), error);
        return await new MessageScenario(options, TextWriter.Null).RunAsync(cancellationToken);
    }

    // Runs a sub scenario (subscribed before the pub run connects) until the pub run has ended; cancelling
    // it then ends its measured interval, and it counts on until nothing more arrives. Also returns the pub
    // run's wall time, connecting and draining included.
    private static async Task<(BenchResult Sub, BenchResult Pub, double PubSeconds)> SubWhilePubAsync(string[] sub, string[] pub)
    {
        using var endSub = new CancellationTokenSource();
        var subscribed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new SignalWriter("run ", subscribed);
        Assert.True(BenchOptions.TryParse([.. sub, "--duration", "60", "--warmup", "0"], out var options, out var error), error);
        var subRun = new MessageScenario(options, log).RunAsync(endSub.Token);
        await subscribed.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var pubStarted = Stopwatch.GetTimestamp();
        var pubResult = await RunMessagesAsync(pub, CancellationToken.None);
        var pubSeconds = Stopwatch.GetElapsedTime(pubStarted).TotalSeconds;
        await endSub.CancelAsync();
        return (await subRun, pubResult, pubSeconds);
    }

    // Completes a signal when the scenario logs its first progress line: every subscriber is subscribed by then.
    private sealed class SignalWriter(string ignoredPrefix, TaskCompletionSource signal) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            if (value is not null && !value.StartsWith(ignoredPrefix, StringComparison.Ordinal))
            {
                signal.TrySetResult();
            }

            base.WriteLine(value);
        }
    }
}
