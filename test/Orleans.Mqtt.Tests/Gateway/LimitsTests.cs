using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>The token buckets, the connection rate limiter and the overload monitor of <c>Mqtt:Limits</c> / <c>Mqtt:Overload</c>, on a fake clock.</summary>
public sealed class LimitsTests
{
    [Fact]
    public void A_bucket_starts_full_then_holds_the_rate()
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(perSecond: 10, burst: 5, time);

        for (var i = 0; i < 5; i++)
        {
            Assert.True(bucket.TryTake(time.GetTimestamp(), 1));
        }

        Assert.False(bucket.TryTake(time.GetTimestamp(), 1));
        Assert.Equal(TimeSpan.FromMilliseconds(100), bucket.TimeUntil(time.GetTimestamp(), 1));

        // Over 10 s at 10 per second: 100 more, not one more.
        var taken = 0;
        for (var step = 0; step < 1000; step++)
        {
            time.Advance(TimeSpan.FromMilliseconds(10));
            while (bucket.TryTake(time.GetTimestamp(), 1))
            {
                taken++;
            }
        }

        Assert.Equal(100, taken);
    }

    [Fact]
    public void A_bucket_idle_for_long_holds_no_more_than_its_burst()
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(perSecond: 100, burst: 20, time);
        time.Advance(TimeSpan.FromHours(1));

        var taken = 0;
        while (bucket.TryTake(time.GetTimestamp(), 1))
        {
            taken++;
        }

        Assert.Equal(20, taken);
    }

    [Fact]
    public void A_burst_of_zero_is_one_seconds_worth_and_at_least_one()
    {
        var time = new FakeTimeProvider();
        Assert.Equal(250, new TokenBucket(250, 0, time).Capacity);
        Assert.Equal(1, new TokenBucket(0.5, 0, time).Capacity);
    }

    [Fact]
    public void A_request_larger_than_the_burst_passes_on_a_full_bucket_and_leaves_it_in_debt()
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(perSecond: 1000, burst: 1000, time);

        Assert.True(bucket.TryTake(time.GetTimestamp(), 5000));

        // 4000 in debt: 4 s until a full bucket's worth is back for the next large one, 4.001 s for one byte.
        Assert.False(bucket.TryTake(time.GetTimestamp(), 1));
        Assert.Equal(TimeSpan.FromSeconds(5), bucket.TimeUntil(time.GetTimestamp(), 5000));
        time.Advance(TimeSpan.FromSeconds(4));
        Assert.False(bucket.TryTake(time.GetTimestamp(), 1));
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(bucket.TryTake(time.GetTimestamp(), 1));
    }

    [Fact]
    public void A_publish_takes_from_both_buckets_or_from_neither()
    {
        var time = new FakeTimeProvider();
        var limit = PublishRateLimit.Create(new LimitsOptions { MessagesPerSecond = 10, MessageBurst = 10, BytesPerSecond = 100, ByteBurst = 100 }, time)!;

        // Bytes run out first: 100 bytes in two messages, then a third is refused without using a message token.
        Assert.True(limit.TryAcquire(time.GetTimestamp(), 50));
        Assert.True(limit.TryAcquire(time.GetTimestamp(), 50));
        Assert.False(limit.TryAcquire(time.GetTimestamp(), 50));
        Assert.Equal(TimeSpan.FromMilliseconds(500), limit.TimeUntilAllowed(time.GetTimestamp(), 50));

        // Empty payloads: the message bucket still has its 8, and only those.
        var passed = 0;
        while (limit.TryAcquire(time.GetTimestamp(), 0))
        {
            passed++;
        }

        Assert.Equal(8, passed);
        Assert.Equal(TimeSpan.FromMilliseconds(100), limit.TimeUntilAllowed(time.GetTimestamp(), 0));
    }

    [Fact]
    public void No_rate_set_makes_no_publish_limit()
    {
        Assert.Null(PublishRateLimit.Create(new LimitsOptions(), new FakeTimeProvider()));
    }

    [Fact]
    public void Each_listener_has_its_own_connection_rate()
    {
        var time = new FakeTimeProvider();
        var limiter = new ConnectionRateLimiter(new LimitsOptions { ConnectionsPerSecond = 2, ConnectionBurst = 3 }, time);

        Assert.Equal(3, Accepted(limiter, MqttListener.Tcp, 10));
        Assert.Equal(3, Accepted(limiter, MqttListener.WebSocket, 10));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(2, Accepted(limiter, MqttListener.Tcp, 10));
        Assert.Equal(3, Accepted(limiter, MqttListener.Tls, 10));
    }

    [Fact]
    public void No_connection_rate_accepts_every_connection()
    {
        var limiter = new ConnectionRateLimiter(new LimitsOptions(), new FakeTimeProvider());
        Assert.Equal(1000, Accepted(limiter, MqttListener.Tcp, 1000));
    }

    [Fact]
    public void Overload_follows_the_samples_of_the_thread_pool_queue_and_the_heap()
    {
        var time = new FakeTimeProvider();
        long queue = 0;
        long heap = 100;
        using var monitor = new OverloadMonitor(
            new OverloadOptions { MaxThreadPoolQueue = 1000, MemoryBudgetBytes = 1000, SampleInterval = TimeSpan.FromSeconds(1) },
            time,
            NullLogger.Instance,
            () => queue,
            () => heap);
        monitor.Start();
        Assert.False(monitor.IsOverloaded);

        // Not per packet: a change shows at the next sample.
        queue = 1001;
        Assert.False(monitor.IsOverloaded);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(monitor.IsOverloaded);
        Assert.Contains("Mqtt:Overload:MaxThreadPoolQueue", monitor.Cause, StringComparison.Ordinal);

        queue = 0;
        heap = 1001;
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(monitor.IsOverloaded);
        Assert.Contains("memory budget", monitor.Cause, StringComparison.Ordinal);

        heap = 999;
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(monitor.IsOverloaded);
        Assert.Equal(string.Empty, monitor.Cause);
    }

    [Fact]
    public void The_default_memory_budget_is_ninety_percent_of_the_gc_available_memory_and_a_queue_limit_of_zero_is_off()
    {
        var time = new FakeTimeProvider();
        using var monitor = new OverloadMonitor(new OverloadOptions { MaxThreadPoolQueue = 0 }, time, NullLogger.Instance, () => long.MaxValue, () => 899, () => 1000);
        Assert.Equal(900, monitor.MemoryBudget);
        monitor.Sample();
        Assert.False(monitor.IsOverloaded);
    }

    [Theory]
    [InlineData("MessagesPerSecond", -1, "Mqtt:Limits:MessagesPerSecond")]
    [InlineData("MessageBurst", 0.5, "Mqtt:Limits:MessageBurst")]
    [InlineData("BytesPerSecond", double.NaN, "Mqtt:Limits:BytesPerSecond")]
    [InlineData("ConnectionBurst", -2, "Mqtt:Limits:ConnectionBurst")]
    [InlineData("MaxSubscriptionsPerClient", -1, "Mqtt:Limits:MaxSubscriptionsPerClient")]
    [InlineData("MaxTopicLength", 0, "Mqtt:Limits:MaxTopicLength")]
    [InlineData("MaxTopicLength", 65536, "Mqtt:Limits:MaxTopicLength")]
    [InlineData("MaxTopicLevels", -1, "Mqtt:Limits:MaxTopicLevels")]
    public void Bad_limits_fail_at_startup_naming_the_setting(string property, double value, string key)
    {
        var options = new MqttGatewayOptions();
        options.Limits.MessagesPerSecond = 10;
        options.Limits.ConnectionsPerSecond = 10;
        var p = typeof(LimitsOptions).GetProperty(property)!;
        p.SetValue(options.Limits, p.PropertyType == typeof(int) ? (object)(int)value : value);

        var result = new MqttGatewayOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains(key, result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_overload_settings_fail_at_startup_naming_the_setting()
    {
        var options = new MqttGatewayOptions { Overload = { MaxThreadPoolQueue = -1, MemoryBudgetBytes = -1, SampleInterval = TimeSpan.Zero } };

        var result = new MqttGatewayOptionsValidator().Validate(null, options);

        Assert.Contains("Mqtt:Overload:MaxThreadPoolQueue", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("Mqtt:Overload:MemoryBudgetBytes", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("Mqtt:Overload:SampleInterval", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void A_publish_timeout_that_is_not_positive_fails_at_startup_naming_the_setting(int seconds)
    {
        var options = new MqttGatewayOptions { PublishTimeout = TimeSpan.FromSeconds(seconds) };

        var result = new MqttGatewayOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains("Mqtt:PublishTimeout", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void A_session_connect_timeout_that_is_not_positive_fails_at_startup_naming_the_setting(int seconds)
    {
        var options = new MqttGatewayOptions { SessionConnectTimeout = TimeSpan.FromSeconds(seconds) };

        var result = new MqttGatewayOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains("Mqtt:SessionConnectTimeout", result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void The_default_limits_are_valid()
    {
        Assert.True(new MqttGatewayOptionsValidator().Validate(null, new MqttGatewayOptions()).Succeeded);
    }

    [Theory]
    [InlineData(0, true, (int)PublishVerdict.DropRateLimited)]
    [InlineData(0, false, (int)PublishVerdict.DropRateLimited)]
    [InlineData(1, true, (int)PublishVerdict.RefuseQuotaExceeded)]
    [InlineData(2, true, (int)PublishVerdict.RefuseQuotaExceeded)]
    [InlineData(1, false, (int)PublishVerdict.Pace)]
    [InlineData(2, false, (int)PublishVerdict.Pace)]
    public void Over_the_rate_qos_0_is_dropped_and_qos_1_2_refused_in_mqtt5_or_paced_in_mqtt311(byte qos, bool v5, int expected)
    {
        var time = new FakeTimeProvider();
        var rate = PublishRateLimit.Create(new LimitsOptions { MessagesPerSecond = 1, MessageBurst = 1 }, time);

        Assert.Equal(PublishVerdict.Route, PublishAdmission.Decide(qos, v5, overloaded: false, resend: false, rate, time.GetTimestamp(), 10));
        Assert.Equal((PublishVerdict)expected, PublishAdmission.Decide(qos, v5, overloaded: false, resend: false, rate, time.GetTimestamp(), 10));

        // A QoS 2 re-send of an accepted packet id is not a new message.
        Assert.Equal(PublishVerdict.Route, PublishAdmission.Decide(2, v5, overloaded: false, resend: true, rate, time.GetTimestamp(), 10));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(PublishVerdict.Route, PublishAdmission.Decide(qos, v5, overloaded: false, resend: false, rate, time.GetTimestamp(), 10));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Overload_sheds_qos_0_first_and_lets_qos_1_2_through(bool v5)
    {
        var time = new FakeTimeProvider();
        Assert.Equal(PublishVerdict.DropOverloaded, PublishAdmission.Decide(0, v5, overloaded: true, resend: false, null, time.GetTimestamp(), 10));
        Assert.Equal(PublishVerdict.Route, PublishAdmission.Decide(1, v5, overloaded: true, resend: false, null, time.GetTimestamp(), 10));
        Assert.Equal(PublishVerdict.Route, PublishAdmission.Decide(2, v5, overloaded: true, resend: false, null, time.GetTimestamp(), 10));
        Assert.Equal(PublishVerdict.Route, PublishAdmission.Decide(0, v5, overloaded: false, resend: false, null, time.GetTimestamp(), 10));
    }

    private static int Accepted(ConnectionRateLimiter limiter, MqttListener listener, int attempts)
    {
        var accepted = 0;
        for (var i = 0; i < attempts; i++)
        {
            if (limiter.TryAccept(listener))
            {
                accepted++;
            }
        }

        return accepted;
    }
}
