using Orleans.Mqtt.Topics;
using Xunit;

namespace Orleans.Mqtt.Tests.Topics;

public sealed class SharedSubscriptionTests
{
    [Theory]
    [InlineData("$share/g/a/b", "g", "a/b")]
    [InlineData("$share/workers/#", "workers", "#")]
    [InlineData("$share/g/+/x", "g", "+/x")]
    public void Valid_shared_subscriptions_split_into_name_and_filter(string filter, string name, string topicFilter)
    {
        Assert.True(SharedSubscription.TryParse(filter, out var n, out var f));
        Assert.Equal((name, topicFilter), (n, f));
    }

    [Theory]
    [InlineData("$share//a")]
    [InlineData("$share/g")]
    [InlineData("$share/g+/a")]
    [InlineData("$share/#/a")]
    [InlineData("$share/g/a/#/b")]
    [InlineData("$share/g/")]
    [InlineData("a/b")]
    public void Invalid_shared_subscriptions_are_refused(string filter)
    {
        Assert.False(SharedSubscription.TryParse(filter, out _, out _));
    }
}
