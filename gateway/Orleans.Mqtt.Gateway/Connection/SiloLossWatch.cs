using Microsoft.Extensions.Options;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Cuts short the grain calls a client waits on when this gateway loses its connection to a silo (Orleans tells it
/// through <see cref="IClusterConnectionStatusObserver"/>): every call under way at that moment gets at most
/// <c>Mqtt:SiloLossGrace</c> more. A call that reached a silo which was then killed is answered by nobody, and without
/// this waited out <c>Mqtt:PublishTimeout</c> (or <c>Mqtt:SessionConnectTimeout</c> for a CONNECT) while the rest of
/// the cluster had declared the silo dead long before; its client waited with it. Calls started after the loss are not
/// affected: Orleans refuses at once those addressed to the lost silo. A gateway co-hosted with its silo has no
/// gateway connections and is never told anything.
/// </summary>
internal sealed partial class SiloLossWatch(IOptions<MqttGatewayOptions> options, TimeProvider timeProvider, ILogger<SiloLossWatch> logger)
    : IClusterConnectionStatusObserver
{
    private readonly TimeSpan _grace = options.Value.SiloLossGrace;
    private CancellationTokenSource _current = new();

    /// <summary>For a call starting now: cancelled <c>Mqtt:SiloLossGrace</c> after the gateway next loses a silo.</summary>
    public CancellationToken CallsInFlight => Volatile.Read(ref _current).Token;

    /// <summary>The extra time a call under way when a silo was lost gets (<c>Mqtt:SiloLossGrace</c>).</summary>
    public TimeSpan Grace => _grace;

    public void NotifyGatewayCountChanged(int currentNumberOfGateways, int previousNumberOfGateways, bool connectionRecovered)
    {
        if (currentNumberOfGateways >= previousNumberOfGateways)
        {
            return;
        }

        // The calls under way keep the old token, cancelled after the grace; new calls get a fresh one.
        var lost = Interlocked.Exchange(ref _current, new CancellationTokenSource());
        _ = CancelAfterGraceAsync(lost);
        LogSiloConnectionLost(logger, previousNumberOfGateways, currentNumberOfGateways, _grace);
    }

    private async Task CancelAfterGraceAsync(CancellationTokenSource lost)
    {
        await Task.Delay(_grace, timeProvider);

        // Not disposed: a call may be about to register on its token, and nothing but those calls is attached to it.
        await lost.CancelAsync();
    }

    public void NotifyClusterConnectionLost()
    {
        // Also reported as the count going to zero, handled above.
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection to a silo lost ({Previous} silos connected, now {Current}): grain calls under way get {Grace} more (Mqtt:SiloLossGrace)")]
    private static partial void LogSiloConnectionLost(ILogger logger, int previous, int current, TimeSpan grace);
}
