using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

public sealed class BenchOptionsTests
{
    [Fact]
    public void ParsesTheDocumentedCommandLine()
    {
        string[] args =
        [
            "pairs", "--host", "10.0.0.1", "--port", "1884", "--pairs", "50", "--qos", "0", "--size", "200",
            "--duration", "20", "--warmup", "3", "--window", "16", "--rate", "5000", "--json", "r.json", "--protocol", "311",
        ];

        Assert.True(BenchOptions.TryParse(args, out var options, out var error), error);
        Assert.Equal("10.0.0.1", options.Host);
        Assert.Equal(1884, options.Port);
        Assert.Equal(50, options.Pairs);
        Assert.Equal(MqttQualityOfServiceLevel.AtMostOnce, options.Qos);
        Assert.Equal(200, options.Size);
        Assert.Equal(TimeSpan.FromSeconds(20), options.Duration);
        Assert.Equal(TimeSpan.FromSeconds(3), options.Warmup);
        Assert.Equal(16, options.Window);
        Assert.Equal(5000, options.Rate);
        Assert.Equal("r.json", options.JsonPath);
        Assert.Equal(MqttProtocolVersion.V311, options.Protocol);
    }

    [Theory]
    [InlineData("pairs", "--qos", "3")]
    [InlineData("pairs", "--size", "10")]
    [InlineData("pairs", "--protocol", "4")]
    [InlineData("pairs", "--port")]
    [InlineData("pairs", "--bogus", "1")]
    [InlineData("fanout")]
    public void RejectsBadArgumentsWithAMessage(params string[] args)
    {
        Assert.False(BenchOptions.TryParse(args, out _, out var error));
        Assert.False(string.IsNullOrEmpty(error));
    }
}
