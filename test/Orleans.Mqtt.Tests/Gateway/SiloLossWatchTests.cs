using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// <see cref="SiloLossWatch"/>: the grain calls under way when the gateway loses its connection to a silo end when the
/// cluster declares a silo dead, and get <c>Mqtt:SiloLossGrace</c> more at most; calls started afterwards, and a silo
/// joining, change nothing.
/// </summary>
public sealed class SiloLossWatchTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);
    private readonly FakeTimeProvider _time = new();
    private readonly FakeClusterSiloLoss _cluster = new();
    private readonly SiloLossWatch _watch;

    public SiloLossWatchTests()
    {
        _watch = new SiloLossWatch(Options.Create(new MqttGatewayOptions { SiloLossGrace = Grace }), _time, _cluster, NullLogger<SiloLossWatch>.Instance);
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
    public async Task Calls_under_way_when_a_silo_is_lost_end_when_the_cluster_declares_it_dead_before_the_grace()
    {
        var underWay = _watch.CallsInFlight;
        _watch.NotifyGatewayCountChanged(2, 3, connectionRecovered: false);
        var later = _watch.CallsInFlight;
        var asked = await _cluster.Asked.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(Grace, asked.Timeout);
        Assert.False(underWay.IsCancellationRequested);

        _cluster.Declare(true);
        await WaitForCancellationAsync(underWay);
        Assert.False(later.IsCancellationRequested);
    }

    [Fact]
    public async Task Calls_under_way_wait_the_grace_when_no_silo_can_tell_whether_the_lost_one_was_declared_dead()
    {
        var underWay = _watch.CallsInFlight;
        _watch.NotifyGatewayCountChanged(2, 3, connectionRecovered: false);
        await _cluster.Asked.Task.WaitAsync(TimeSpan.FromSeconds(10));
        _cluster.Fail(new TimeoutException("no silo answered"));

        // Given the failed answer every chance to cut the calls short before the grace's timer moves.
        await Task.Yield();
        await Task.Delay(50);
        Assert.False(underWay.IsCancellationRequested);
        _time.Advance(Grace + TimeSpan.FromMilliseconds(100));
        await WaitForCancellationAsync(underWay);
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

    // The cluster's answers, given by each test when it chooses; asked before the grace's timer is created or after.
    private sealed class FakeClusterSiloLoss : IClusterSiloLoss
    {
        private readonly TaskCompletionSource<bool> _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource<(TimeSpan LostAgo, TimeSpan Timeout)> Asked { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<bool> WaitForSiloLossAsync(TimeSpan lostAgo, TimeSpan timeout)
        {
            Asked.TrySetResult((lostAgo, timeout));
            return _answer.Task;
        }

        public void Declare(bool declared) => _answer.SetResult(declared);

        public void Fail(Exception exception) => _answer.SetException(exception);
    }

    // The cancellation runs as a continuation of the grace's timer: awaited, with a bound, not assumed synchronous.
    private static async Task WaitForCancellationAsync(CancellationToken token)
    {
        var cancelled = new TaskCompletionSource();
        using var registration = token.Register(cancelled.SetResult);
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
