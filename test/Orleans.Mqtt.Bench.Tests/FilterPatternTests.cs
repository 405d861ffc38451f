using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

public sealed class FilterPatternTests
{
    [Fact]
    public void PlaceholdersExpandToTheConnectionAndSubscriptionIndexes()
    {
        Assert.Equal("fleet/d/7/cmd/3", FilterPattern.Expand("{prefix}/d/{c}/cmd/{i}", "fleet", 7, 3, 10));
        Assert.Equal("fleet/t/73/+/telemetry", FilterPattern.Expand("{prefix}/t/{n}/+/telemetry", "fleet", 7, 3, 10));
        Assert.Equal("bench/r/c/5", FilterPattern.Expand(FilterPattern.Default(1), "bench/r", 5, 0, 1));
        Assert.Equal("bench/r/c/5/2", FilterPattern.Expand(FilterPattern.Default(3), "bench/r", 5, 2, 3));
    }

    [Fact]
    public void EveryFilterOfARunIsDistinct()
    {
        foreach (var pattern in (string[])["{prefix}/d/{c}/cmd/{i}", "{prefix}/t/{n}/+/telemetry", FilterPattern.Default(4)])
        {
            var filters = new HashSet<string>();
            for (var c = 0; c < 30; c++)
            {
                for (var i = 0; i < 4; i++)
                {
                    Assert.True(filters.Add(FilterPattern.Expand(pattern, "p", c, i, 4)), $"{pattern} repeats for c={c} i={i}");
                }
            }
        }
    }

    [Theory]
    [InlineData("a/b/c", "a/b/c")]
    [InlineData("a/+/c", "a/x/c")]
    [InlineData("+/b/#", "x/b/x")]
    [InlineData("#", "x")]
    public void TheTopicOfAFilterReplacesEachWildcardLevel(string filter, string topic) =>
        Assert.Equal(topic, FilterPattern.TopicFor(filter));

    [Theory]
    [InlineData("{prefix}/d/{c}/cmd/{i}", 10, null)]
    [InlineData("{prefix}/t/{n}/+/telemetry", 100, null)]
    [InlineData("{prefix}/c/{c}", 1, null)]
    [InlineData("{prefix}/all", 1, "needs {c} or {n}")]
    [InlineData("{prefix}/c/{c}", 2, "needs {i} or {n}")]
    [InlineData("{prefix}/{c}/{x}", 1, "only {prefix}")]
    [InlineData("{prefix}/{c}/a+", 1, "whole level")]
    [InlineData("{prefix}/#/{c}", 1, "must be the last level")]
    public void InvalidPatternsAreNamed(string pattern, int subscriptions, string? reason)
    {
        var error = FilterPattern.Validate(pattern, subscriptions);
        if (reason is null)
        {
            Assert.Null(error);
        }
        else
        {
            Assert.Contains(reason, error, StringComparison.Ordinal);
        }
    }
}
