using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

public sealed class BenchOptionsTests
{
    [Fact]
    public void ParsesTheDocumentedPairsCommandLine()
    {
        string[] args =
        [
            "pairs", "--host", "10.0.0.1", "--port", "1884", "--pairs", "50", "--qos", "0", "--size", "200",
            "--duration", "20", "--warmup", "3", "--window", "16", "--rate", "5000", "--json", "r.json", "--protocol", "311",
        ];

        Assert.True(BenchOptions.TryParse(args, out var options, out var error), error);
        Assert.Equal([new BrokerAddress("10.0.0.1", 1884)], options.Hosts);
        Assert.Equal("p2p", options.ScenarioKind);
        Assert.Equal(50, options.Pairs);
        Assert.Equal(50, options.Publishers);
        Assert.Equal(50, options.Subscribers);
        Assert.Equal(0, options.Qos);
        Assert.Equal(200, options.Size);
        Assert.Equal(TimeSpan.FromSeconds(20), options.Duration);
        Assert.Equal(TimeSpan.FromSeconds(3), options.Warmup);
        Assert.Equal(16, options.Window);
        Assert.Equal(5000, options.Rate);
        Assert.Equal("r.json", options.JsonPath);
        Assert.Equal(MqttWire.Version311, options.ProtocolLevel);
    }

    [Theory]
    [InlineData("p2p", 50, 50)]
    [InlineData("pub", 10, 0)]
    [InlineData("sub", 0, 1)]
    [InlineData("fanout", 1, 100)]
    [InlineData("fanin", 100, 4)]
    public void EachScenarioHasItsDefaultCounts(string scenario, int publishers, int subscribers)
    {
        Assert.True(BenchOptions.TryParse([scenario], out var options, out var error), error);
        Assert.Equal(publishers, options.Publishers);
        Assert.Equal(subscribers, options.Subscribers);
    }

    [Fact]
    public void ParsesFanoutAndFaninCounts()
    {
        Assert.True(BenchOptions.TryParse(["fanout", "--subscribers", "1000", "--qos", "2", "--topic", "t/x/"], out var fanout, out var error), error);
        Assert.Equal(1, fanout.Publishers);
        Assert.Equal(1000, fanout.Subscribers);
        Assert.Equal(2, fanout.Qos);
        Assert.Equal("t/x", fanout.Topic);

        Assert.True(BenchOptions.TryParse(["fanin", "--publishers", "20", "--subscribers", "3", "--group", "workers"], out var fanin, out error), error);
        Assert.Equal(20, fanin.Publishers);
        Assert.Equal(3, fanin.Subscribers);
        Assert.Equal("workers", fanin.Group);
    }

    [Fact]
    public void SpreadsSeveralHostsAndFillsInTheDefaultPort()
    {
        Assert.True(BenchOptions.TryParse(["pub", "--host", "127.0.0.1:1883,127.0.0.1:1884,broker", "--port", "2000"], out var options, out var error), error);
        Assert.Equal(
            [new BrokerAddress("127.0.0.1", 1883), new BrokerAddress("127.0.0.1", 1884), new BrokerAddress("broker", 2000)],
            options.Hosts);
        Assert.True(BrokerAddress.TryParseList("[::1]:1885,::1", 1883, out var v6));
        Assert.Equal([new BrokerAddress("::1", 1885), new BrokerAddress("::1", 1883)], v6);
    }

    [Fact]
    public void ParsesTheConnScenario()
    {
        string[] args =
        [
            "conn", "--connections", "40000", "--connect-rate", "2000", "--inflight", "50", "--session-expiry", "300",
            "--subscriptions", "1", "--duration", "10", "--broker-pid", "12,34", "--source", "none", "--keepalive", "30",
        ];

        Assert.True(BenchOptions.TryParse(args, out var options, out var error), error);
        Assert.Equal(40_000, options.Connections);
        Assert.Equal(2000, options.ConnectRate);
        Assert.Equal(50, options.Inflight);
        Assert.Equal(300u, options.SessionExpiry);
        Assert.Equal(1, options.Subscriptions);
        Assert.Equal([12, 34], options.BrokerPids);
        Assert.False(options.SpreadSources);
        Assert.Equal((ushort)30, options.KeepAlive);
        Assert.Equal(3, options.WorkerCount);
    }

    [Fact]
    public void ParsesTheSubrouteScenario()
    {
        string[] args = ["subroute", "--host", "10.0.0.1:1883,10.0.0.2:1884", "--trials", "200", "--concurrency", "4", "--trial-timeout", "2.5", "--retained"];

        Assert.True(BenchOptions.TryParse(args, out var options, out var error), error);
        Assert.Equal("subroute", options.ScenarioKind);
        Assert.Equal([new BrokerAddress("10.0.0.1", 1883), new BrokerAddress("10.0.0.2", 1884)], options.Hosts);
        Assert.Equal(200, options.Trials);
        Assert.Equal(4, options.Concurrency);
        Assert.Equal(TimeSpan.FromSeconds(2.5), options.TrialTimeout);
        Assert.True(options.Retained);
    }

    [Fact]
    public void SubrouteDefaultsTo1000TrialsEightAtOnceWithinFiveSeconds()
    {
        Assert.True(BenchOptions.TryParse(["subroute"], out var options, out var error), error);
        Assert.Equal(1000, options.Trials);
        Assert.Equal(8, options.Concurrency);
        Assert.Equal(TimeSpan.FromSeconds(5), options.TrialTimeout);
        Assert.False(options.Retained);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(18_000, 1)]
    [InlineData(18_001, 2)]
    [InlineData(100_000, 6)]
    public void AutoWorkersHoldAtMost18000ConnectionsEach(int connections, int workers)
    {
        Assert.True(BenchOptions.TryParse(["conn", "--connections", connections.ToString(), "--workers", "auto"], out var options, out var error), error);
        Assert.Equal(workers, options.WorkerCount);
    }

    [Fact]
    public void ExplicitWorkersWin()
    {
        Assert.True(BenchOptions.TryParse(["conn", "--connections", "100", "--workers", "4"], out var options, out var error), error);
        Assert.Equal(4, options.WorkerCount);
    }

    [Theory]
    [InlineData("pairs", "--qos", "3")]
    [InlineData("pairs", "--size", "10")]
    [InlineData("pairs", "--protocol", "4")]
    [InlineData("pairs", "--port")]
    [InlineData("pairs", "--bogus", "1")]
    [InlineData("pairs", "--window", "70000")]
    [InlineData("pub", "--host", "127.0.0.1:99999")]
    [InlineData("pub", "--host", ",")]
    [InlineData("fanout", "--topic", "a/+/b")]
    [InlineData("fanout", "--subscribers", "100000", "--publishers", "11")]
    [InlineData("conn", "--subscriptions", "2", "--filter-pattern", "{prefix}/c/{c}")]
    [InlineData("conn", "--subscriptions", "1", "--filter-pattern", "a/#/{c}")]
    [InlineData("conn", "--subscriptions", "20000")]
    [InlineData("conn", "--subscribe-batch", "0")]
    [InlineData("conn", "--check", "10")]
    [InlineData("conn", "--source", "somewhere")]
    [InlineData("conn", "--workers", "many")]
    [InlineData("conn", "--broker-pid", "x")]
    [InlineData("subroute", "--trials", "0")]
    [InlineData("subroute", "--concurrency", "0")]
    [InlineData("subroute", "--trial-timeout", "0")]
    [InlineData("subroute", "--trial-timeout", "soon")]
    [InlineData("flood")]
    public void RejectsBadArgumentsWithAMessage(params string[] args)
    {
        Assert.False(BenchOptions.TryParse(args, out _, out var error));
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Fact]
    public void ParsesTheFleetCommandLine()
    {
        Assert.True(BenchOptions.TryParse(
            ["conn", "--connections", "100000", "--subscriptions", "10", "--subscribe-batch", "10", "--filter-pattern", "fleet/d/{c}/cmd/{i}", "--check", "1000"],
            out var options, out var error), error);
        Assert.Equal(10, options.Subscriptions);
        Assert.Equal(10, options.SubscribeBatch);
        Assert.Equal("fleet/d/{c}/cmd/{i}", options.EffectiveFilterPattern);
        Assert.Equal(1000, options.Check);

        Assert.False(BenchOptions.TryParse(["conn", "--subscriptions", "1", "--filter-pattern", "x/{q}/{c}"], out _, out error));
        Assert.Contains("--filter-pattern", error, StringComparison.Ordinal);
    }
}
