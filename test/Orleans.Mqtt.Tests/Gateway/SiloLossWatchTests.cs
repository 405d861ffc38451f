using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// <see cref="SiloLossWatch"/>: the grain calls under way when the gateway loses its connection to a silo get
/// <c>Mqtt:SiloLossGrace</c> more and no longer; calls started afterwards, and a silo joining, change nothing.
/// </summary>
public sealed class SiloLossWatchTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);
    private readonly FakeTimeProvider _time = new();
    private readonly SiloLossWatch _watch;

    public SiloLossWatchTests()
    {
        _watch = new SiloLossWatch(Options.Create(new MqttGatewayOptions { SiloLossGrace = Grace }), _time, NullLogger<SiloLossWatch>.Instance);
    }

    [Fact]
    public async Task Calls_under_way_when_a_silo_is_lost_are_cut_short_after_the_grace_and_later_calls_are_not()
    {
        var underWay = _watch.CallsInFlight;
        _watch.NotifyGatewayCountChanged(2, 3, connectionRecovered: false);
        var later = _watch.CallsInFlight;

        _time.Advance(Grace - TimeSpan.FromMilliseconds(100));
        Assert.False(underWay.IsCancellationRequested);
        _time.Advance(TimeSpan.FromMilliseconds(200));
        await WaitForCancellationAsync(underWay);
        Assert.False(later.IsCancellationRequested);
    }

    [Fact]
    public void A_silo_joining_cuts_nothing_short()
    {
        var underWay = _watch.CallsInFlight;
        _watch.NotifyGatewayCountChanged(3, 2, connectionRecovered: false);
        _time.Advance(Grace * 10);

        Assert.False(underWay.IsCancellationRequested);
        Assert.Equal(underWay, _watch.CallsInFlight);
    }

    // The cancellation runs as a continuation of the grace's timer: awaited, with a bound, not assumed synchronous.
    private static async Task WaitForCancellationAsync(CancellationToken token)
    {
        var cancelled = new TaskCompletionSource();
        using var registration = token.Register(cancelled.SetResult);
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
