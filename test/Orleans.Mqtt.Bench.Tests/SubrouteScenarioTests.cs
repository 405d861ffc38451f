using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

/// <summary>Short real subroute runs against mosquitto on free loopback ports.</summary>
public sealed class SubrouteScenarioTests
{
    [Theory]
    [InlineData(false, "5")]
    [InlineData(true, "5")]
    [InlineData(false, "311")]
    public async Task EveryTrialIsDeliveredByOneBroker(bool retained, string protocol)
    {
        await using var broker = await MosquittoBroker.StartAsync();
        var endpoint = $"127.0.0.1:{broker.Port}";
        string[] args = ["subroute", "--host", $"{endpoint},{endpoint}", "--trials", "50", "--concurrency", "4", "--protocol", protocol];

        var result = await RunAsync(retained ? [.. args, "--retained"] : args);

        Assert.Equal(0, result.ExitCode);
        var route = Assert.IsType<RouteResult>(result.Route);
        Assert.Equal(retained, route.Retained);
        Assert.Equal(50, route.Requested);
        Assert.Equal(50, route.Trials);
        Assert.Equal(50, route.Delivered);
        Assert.Equal(0, route.Misses);
        Assert.Equal(0, route.Failed);
        Assert.Empty(route.MissedTrials);
        Assert.Equal(4, result.SubscribersRunning);
        Assert.Equal(4, result.PublishersRunning);
        Assert.True(route.TrialsPerSecond > 0);
        AssertSensible(route.RouteMs, 50, route.TrialTimeoutSeconds * 1000);
        AssertSensible(route.SubAckMs, 50, route.TrialTimeoutSeconds * 1000);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TrialsAreMissesWhenThePublisherIsOnABrokerTheSubscriberIsNotConnectedTo(bool retained)
    {
        await using var first = await MosquittoBroker.StartAsync();
        await using var second = await MosquittoBroker.StartAsync();
        string[] args =
        [
            "subroute", "--host", $"127.0.0.1:{first.Port},127.0.0.1:{second.Port}", "--trials", "6", "--concurrency", "3", "--trial-timeout", "0.2",
        ];

        var result = await RunAsync(retained ? [.. args, "--retained"] : args);

        Assert.Equal(4, result.ExitCode);
        var route = Assert.IsType<RouteResult>(result.Route);
        Assert.Equal(6, route.Trials);
        Assert.Equal(6, route.Misses);
        Assert.Equal(0, route.Delivered);
        Assert.Equal(0, route.Failed);
        Assert.Equal([0, 1, 2, 3, 4, 5], route.MissedTrials.Order());
        Assert.Equal(0, route.RouteMs.Count);
        Assert.Equal(6, route.SubAckMs.Count);
        Assert.Contains(result.Errors, e => e.Contains("missed", StringComparison.Ordinal));
        Assert.Contains("misses 6", result.ToText(), StringComparison.Ordinal);
    }

    private static async Task<BenchResult> RunAsync(string[] args)
    {
        Assert.True(BenchOptions.TryParse(args, out var options, out var error), error);
        return await new SubrouteScenario(options, TextWriter.Null).RunAsync(CancellationToken.None);
    }

    private static void AssertSensible(LatencySummary latency, long count, double ceilingMs)
    {
        Assert.Equal(count, latency.Count);
        Assert.True(latency.P50 > 0);
        Assert.True(latency.P50 <= latency.P90 && latency.P90 <= latency.P99 && latency.P99 <= latency.Max, $"p50 {latency.P50} p90 {latency.P90} p99 {latency.P99} max {latency.Max}");
        Assert.True(latency.Max < ceilingMs, $"max {latency.Max} ms");
    }
}
