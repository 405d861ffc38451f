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
}
