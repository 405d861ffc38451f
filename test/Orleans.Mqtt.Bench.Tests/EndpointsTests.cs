using System.Net;
using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

public sealed class EndpointsTests
{
    [Fact]
    public async Task ConnectionsGoToTheBrokersInTurnFromSpreadLoopbackSources()
    {
        Assert.True(BenchOptions.TryParse(["conn", "--host", "127.0.0.1:1883,127.0.0.1:1884"], out var options, out _));
        var endpoints = await Endpoints.ResolveAsync(options, CancellationToken.None);

        Assert.Equal(1883, endpoints.Broker(0).Port);
        Assert.Equal(1884, endpoints.Broker(1).Port);
        Assert.Equal(1883, endpoints.Broker(2).Port);
        Assert.Equal(IPAddress.Parse("127.0.0.1"), endpoints.Source(0));
        Assert.Equal(IPAddress.Parse("127.0.0.254"), endpoints.Source(253));
        Assert.Equal(IPAddress.Parse("127.0.0.1"), endpoints.Source(254));
    }

    [Fact]
    public async Task SourcesAreLeftToTheSystemWhenAskedOrWhenABrokerIsNotOnLoopback()
    {
        Assert.True(BenchOptions.TryParse(["conn", "--source", "none"], out var none, out _));
        Assert.Null((await Endpoints.ResolveAsync(none, CancellationToken.None)).Source(0));

        Assert.True(BenchOptions.TryParse(["conn", "--host", "127.0.0.1,10.1.2.3"], out var mixed, out _));
        Assert.Null((await Endpoints.ResolveAsync(mixed, CancellationToken.None)).Source(0));
    }
}
