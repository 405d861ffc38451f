using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Grains;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// <see cref="SiloLossSignal"/>: a gateway asking after it lost a silo hears of a silo that left the active silos
/// since (or just before, within its lostAgo), and of none otherwise.
/// </summary>
public sealed class SiloLossSignalTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);
    private readonly FakeTimeProvider _time = new();
    private readonly SiloLossSignal _signal;

    public SiloLossSignalTests()
    {
        _signal = new SiloLossSignal(_time);
    }

    [Fact]
    public async Task A_wait_ends_true_when_a_silo_leaves_while_it_waits()
    {
        var wait = _signal.WaitAsync(TimeSpan.Zero, Timeout);
        Assert.False(wait.IsCompleted);

        _signal.Raise();

        Assert.True(await wait.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_silo_that_left_within_lost_ago_counts_and_one_that_left_before_does_not()
    {
        _signal.Raise();
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await _signal.WaitAsync(TimeSpan.FromSeconds(1), Timeout));

        _time.Advance(TimeSpan.FromSeconds(10));
        var wait = _signal.WaitAsync(TimeSpan.FromSeconds(1), Timeout);
        Assert.False(wait.IsCompleted);
        _time.Advance(Timeout);
        Assert.False(await wait.WaitAsync(TimeSpan.FromSeconds(10)));
    }
}
