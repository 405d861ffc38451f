using Xunit;

namespace Orleans.Mqtt.Tests.Hosting;

public sealed class BrokerOptionsValidatorTests
{
    [Fact]
    public void The_default_broker_options_are_valid()
    {
        Assert.True(new MqttBrokerOptionsValidator().Validate(null, new MqttBrokerOptions()).Succeeded);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void A_takeover_notice_timeout_that_is_not_positive_fails_at_startup_naming_the_setting(int seconds)
    {
        var result = new MqttBrokerOptionsValidator().Validate(null, new MqttBrokerOptions { TakeoverNoticeTimeout = TimeSpan.FromSeconds(seconds) });

        Assert.True(result.Failed);
        Assert.Contains("Mqtt:TakeoverNoticeTimeout", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-1L, false)]
    [InlineData(0L, true)] // off
    [InlineData(1L << 30, true)]
    [InlineData((1L << 30) + 1, false)]
    public void The_idle_young_collection_threshold_is_checked_at_startup_naming_the_setting(long bytes, bool valid)
    {
        var result = new MqttBrokerOptionsValidator().Validate(null, new MqttBrokerOptions { IdleYoungCollectionBytes = bytes });

        Assert.Equal(valid, result.Succeeded);
        if (!valid)
        {
            Assert.Contains("Mqtt:IdleYoungCollectionBytes", result.FailureMessage, StringComparison.Ordinal);
        }
    }
}
