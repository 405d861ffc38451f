using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>The gateway-wide budget of per-connection log lines, on a fake clock: a flood of short connections writes a burst, then the rate, and says how many lines it held back.</summary>
public sealed class ConnectionLogBudgetTests
{
    [Fact]
    public void A_flood_writes_the_burst_then_the_rate_and_reports_what_it_held_back()
    {
        var time = new FakeTimeProvider();
        var budget = new ConnectionLogBudget(time);

        var written = 0;
        for (var i = 0; i < 10_000; i++)
        {
            if (budget.TryWrite(out var heldBack))
            {
                Assert.Equal(0, heldBack);
                written++;
            }
        }

        Assert.Equal((int)ConnectionLogBudget.Burst, written);

        // One second later the rate allows 20 more lines; the first of them carries the 9,800 held back.
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(budget.TryWrite(out var reported));
        Assert.Equal(10_000 - (long)ConnectionLogBudget.Burst, reported);

        var more = 1;
        while (budget.TryWrite(out var again))
        {
            Assert.Equal(0, again);
            more++;
        }

        Assert.Equal((int)ConnectionLogBudget.LinesPerSecond, more);
    }

    [Fact]
    public void Lines_within_the_budget_are_all_written()
    {
        var time = new FakeTimeProvider();
        var budget = new ConnectionLogBudget(time);
        for (var second = 0; second < 60; second++)
        {
            for (var i = 0; i < (int)ConnectionLogBudget.LinesPerSecond; i++)
            {
                Assert.True(budget.TryWrite(out var heldBack));
                Assert.Equal(0, heldBack);
            }

            time.Advance(TimeSpan.FromSeconds(1));
        }
    }
}
