using Microsoft.Extensions.Options;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Cuts short the grain calls a client waits on when this gateway loses its connection to a silo (Orleans tells it
/// through <see cref="IClusterConnectionStatusObserver"/>): every call under way at that moment ends as soon as a live
/// silo reports the lost one declared dead (<see cref="IClusterSiloLoss"/>), and at most <c>Mqtt:SiloLossGrace</c>
/// after the loss. A call that reached a silo which was then killed is answered by nobody: Orleans' client fails the
/// calls it sent to a silo declared dead only on the silos, not the ones it forwarded through a gateway silo, so
/// without this such a call waited out <c>Mqtt:PublishTimeout</c> (or <c>Mqtt:SessionConnectTimeout</c> for a
/// CONNECT) while the rest of the cluster had declared the silo dead long before; its client waited with it. Calls to
/// live silos that waited on the lost one are released by those silos at the declaration, so cutting at the
/// declaration loses nothing that was still coming. Calls started after the loss are not affected: Orleans refuses at
/// once those addressed to the lost silo. A gateway co-hosted with its silo has no gateway connections and is never
/// told anything.
/// </summary>
internal sealed partial class SiloLossWatch(IOptions<MqttGatewayOptions> options, TimeProvider timeProvider, IClusterSiloLoss cluster, ILogger<SiloLossWatch> logger)
    : IClusterConnectionStatusObserver
{
    // Between two asks whether the lost silo was declared dead, when one failed.
    private static readonly TimeSpan AskPause = TimeSpan.FromMilliseconds(100);
    private readonly TimeSpan _grace = options.Value.SiloLossGrace;
    private CancellationTokenSource _current = new();

    /// <summary>
    /// For a call starting now: cancelled when the gateway next loses a silo and the cluster declares a silo dead, or
    /// <c>Mqtt:SiloLossGrace</c> after the loss, whichever comes first.
    /// </summary>
    public CancellationToken CallsInFlight => Volatile.Read(ref _current).Token;

    /// <summary>The longest a call under way when a silo was lost waits further (<c>Mqtt:SiloLossGrace</c>).</summary>
    public TimeSpan Grace => _grace;

    public void NotifyGatewayCountChanged(int currentNumberOfGateways, int previousNumberOfGateways, bool connectionRecovered)
    {
        if (currentNumberOfGateways >= previousNumberOfGateways)
        {
            return;
        }

        // The calls under way keep the old token, cancelled below; new calls get a fresh one. The grain call runs apart:
        // this is Orleans' own notification.
        var lost = Interlocked.Exchange(ref _current, new CancellationTokenSource());
        var lostAt = timeProvider.GetTimestamp();
        var grace = Task.Delay(_grace, timeProvider);
        var declared = Task.Run(() => DeclaredDeadAsync(lostAt));
        _ = CancelAtDeathOrGraceAsync(lost, lostAt, grace, declared);
        LogSiloConnectionLost(logger, previousNumberOfGateways, currentNumberOfGateways, _grace);
    }

    private async Task CancelAtDeathOrGraceAsync(CancellationTokenSource lost, long lostAt, Task grace, Task<bool> declared)
    {
        if (await Task.WhenAny(grace, declared) == declared && await declared)
        {
            LogCutAtDeclaration(logger, timeProvider.GetElapsedTime(lostAt));
        }
        else
        {
            await grace;
        }

        // Not disposed: a call may be about to register on its token, and nothing but those calls is attached to it.
        await lost.CancelAsync();
    }

    private async Task<bool> DeclaredDeadAsync(long lostAt)
    {
        while (true)
        {
            var left = _grace - timeProvider.GetElapsedTime(lostAt);
            try
            {
                return left > TimeSpan.Zero && await cluster.WaitForSiloLossAsync(timeProvider.GetElapsedTime(lostAt), left);
            }
            catch (Exception ex) when (left > AskPause)
            {
                // Refused at once when the call went out through the lost silo's connection before Orleans' client
                // marked that gateway dead: asked again, through another.
                LogDeclarationUnknown(logger, ex.GetType().Name, ex.Message);
                await Task.Delay(AskPause, timeProvider);
            }
            catch (Exception ex)
            {
                // No live silo answered within the grace (the last one was lost, or the cluster is restarting): the
                // grace decides.
                LogDeclarationUnknown(logger, ex.GetType().Name, ex.Message);
                return false;
            }
        }
    }

    public void NotifyClusterConnectionLost()
    {
        // Also reported as the count going to zero, handled above.
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection to a silo lost ({Previous} silos connected, now {Current}): grain calls under way end when the cluster declares it dead, at most {Grace} later (Mqtt:SiloLossGrace)")]
    private static partial void LogSiloConnectionLost(ILogger logger, int previous, int current, TimeSpan grace);

    [LoggerMessage(Level = LogLevel.Information, Message = "A silo was declared dead {Elapsed} after the connection loss: grain calls under way then are cut short now")]
    private static partial void LogCutAtDeclaration(ILogger logger, TimeSpan elapsed);

    [LoggerMessage(Level = LogLevel.Information, Message = "No silo told whether the lost one was declared dead ({Error}: {Message}); asked again while Mqtt:SiloLossGrace lasts")]
    private static partial void LogDeclarationUnknown(ILogger logger, string error, string message);
}

/// <summary>The cluster's answer to "has a silo been declared dead since the gateway lost a connection?" (<see cref="ISiloLossGrain"/>).</summary>
internal interface IClusterSiloLoss
{
    /// <summary>See <see cref="ISiloLossGrain.WaitForSiloLoss"/>.</summary>
    Task<bool> WaitForSiloLossAsync(TimeSpan lostAgo, TimeSpan timeout);
}

/// <summary>
/// <see cref="IClusterSiloLoss"/> through the gateway's cluster client. The grain factory is resolved at each loss, not
/// injected: the client is built with <see cref="SiloLossWatch"/> as one of its observers.
/// </summary>
internal sealed class ClusterSiloLoss(Func<IGrainFactory> grainFactory) : IClusterSiloLoss
{
    public Task<bool> WaitForSiloLossAsync(TimeSpan lostAgo, TimeSpan timeout) =>
        grainFactory().GetGrain<ISiloLossGrain>(0).WaitForSiloLoss(lostAgo, timeout);
}
