using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// <see cref="CallDeadlines"/>: calls that start within one slice of their bound share a deadline, which ends no sooner
/// than the bound after the last of them started and at most a slice later; a call after the slice, with another bound
/// or after the gateway lost a silo gets a new one; the loss of a silo cuts the shared deadline short.
/// </summary>
public sealed class CallDeadlinesTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan Slice = Bound / CallDeadlines.Slices;
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);
    private readonly FakeTimeProvider _time = new();
    private readonly SiloLossWatch _siloLoss;
    private readonly CallDeadlines _deadlines;

    public CallDeadlinesTests()
    {
        _siloLoss = new SiloLossWatch(Options.Create(new MqttGatewayOptions { SiloLossGrace = Grace }), _time, NullLogger<SiloLossWatch>.Instance);
        _deadlines = new CallDeadlines(_time, _siloLoss);
    }

    [Fact]
    public void Calls_within_one_slice_share_a_deadline_that_ends_no_sooner_than_the_bound_after_the_last_of_them()
    {
        var first = _deadlines.Next(Bound);
        _time.Advance(Slice - TimeSpan.FromMilliseconds(1));
        var last = _deadlines.Next(Bound);
        Assert.Same(first, last);

        _time.Advance(Bound);
        Assert.False(last.Token.IsCancellationRequested);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(last.Token.IsCancellationRequested);
        Assert.True(last.TimedOut);
    }

    [Fact]
    public void A_call_after_the_slice_or_with_another_bound_gets_a_deadline_of_its_own()
    {
        var first = _deadlines.Next(Bound);
        Assert.NotSame(first, _deadlines.Next(Bound * 2));

        var again = _deadlines.Next(Bound);
        _time.Advance(Slice);
        var next = _deadlines.Next(Bound);
        Assert.NotSame(again, next);

        // The first ends a slice before the next; the next still runs its full bound.
        _time.Advance(Bound);
        Assert.True(again.Token.IsCancellationRequested);
        Assert.False(next.Token.IsCancellationRequested);
    }

    [Fact]
    public async Task The_loss_of_a_silo_cuts_the_calls_under_way_short_and_later_calls_get_a_new_deadline()
    {
        var underWay = _deadlines.Next(Bound);
        _siloLoss.NotifyGatewayCountChanged(1, 2, connectionRecovered: false);
        var later = _deadlines.Next(Bound);
        Assert.NotSame(underWay, later);

        _time.Advance(Grace);
        var cancelled = new TaskCompletionSource();
        using (underWay.Token.Register(cancelled.SetResult))
        {
            // The grace's cancellation runs as a continuation of its timer: awaited, with a bound.
            await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.False(underWay.TimedOut);
        Assert.True(underWay.Lost.IsCancellationRequested);
        Assert.False(later.Token.IsCancellationRequested);
    }
}
