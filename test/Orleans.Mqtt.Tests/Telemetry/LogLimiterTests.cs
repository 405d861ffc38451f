using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Telemetry;
using Xunit;

namespace Orleans.Mqtt.Tests.Telemetry;

public sealed class LogLimiterTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);

    [Fact]
    public void The_first_event_logs_at_once_and_the_next_ones_within_the_interval_are_summed()
    {
        var time = new FakeTimeProvider();
        var limiter = new LogLimiter(time, Interval);

        Assert.True(limiter.TryEnter(1, out var suppressed));
        Assert.Equal(0, suppressed);
        for (var i = 0; i < 1000; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(5));
            Assert.False(limiter.TryEnter(2, out _));
        }

        // 5 s in: not yet.
        Assert.False(limiter.TryTakeSuppressed(force: false, out _));

        // The interval passed: the next event logs, and reports the 2000 held back.
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(limiter.TryEnter(1, out suppressed));
        Assert.Equal(2000, suppressed);
        Assert.False(limiter.TryEnter(1, out _));
    }

    [Fact]
    public void A_timer_reports_the_sum_once_the_interval_passed_and_the_owner_reports_the_rest_when_it_ends()
    {
        var time = new FakeTimeProvider();
        var limiter = new LogLimiter(time, Interval);
        Assert.True(limiter.TryEnter(1, out _));
        Assert.False(limiter.TryEnter(3, out _));

        time.Advance(TimeSpan.FromSeconds(9));
        Assert.False(limiter.TryTakeSuppressed(force: false, out _));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(limiter.TryTakeSuppressed(force: false, out var suppressed));
        Assert.Equal(3, suppressed);

        // Reported: nothing left, and the report started a new interval.
        Assert.False(limiter.TryTakeSuppressed(force: true, out _));
        Assert.False(limiter.TryEnter(4, out _));

        // The connection closes before the interval ends: what was held back is reported now.
        Assert.True(limiter.TryTakeSuppressed(force: true, out suppressed));
        Assert.Equal(4, suppressed);
    }

    [Fact]
    public void Events_an_interval_apart_all_log()
    {
        var time = new FakeTimeProvider();
        var limiter = new LogLimiter(time, Interval);
        for (var i = 0; i < 5; i++)
        {
            Assert.True(limiter.TryEnter(1, out var suppressed));
            Assert.Equal(0, suppressed);
            time.Advance(Interval);
        }
    }
}
