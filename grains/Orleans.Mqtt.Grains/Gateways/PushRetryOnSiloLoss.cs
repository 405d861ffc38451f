using Microsoft.Extensions.Logging;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Tells <see cref="GatewayOutbox"/> when a silo that was active is no longer (declared dead, or stopping), so that pushes to gateways still
/// waiting for their answer are sent again at once (<see cref="GatewayOutbox.RetryPushesInFlight"/>).
/// </summary>
internal sealed partial class PushRetryOnSiloLoss(
    IClusterMembershipService membership,
    GatewayOutbox outbox,
    ILogger<PushRetryOnSiloLoss> logger) : SiloBackgroundWork
{
    protected override void Run(CancellationToken stopping) => _ = Task.Run(() => WatchAsync(stopping));

    private async Task WatchAsync(CancellationToken cancellationToken)
    {
        var active = new HashSet<SiloAddress>();
        try
        {
            await foreach (var view in membership.MembershipUpdates.WithCancellation(cancellationToken))
            {
                var now = new HashSet<SiloAddress>();
                foreach (var member in view.Members.Values)
                {
                    if (member.Status == SiloStatus.Active)
                    {
                        now.Add(member.SiloAddress);
                    }
                }

                foreach (var silo in active)
                {
                    if (!now.Contains(silo))
                    {
                        LogSiloLost(logger, silo, outbox.RetryPushesInFlight());
                        break;
                    }
                }

                active = now;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Silo {Silo} no longer active: {Waiting} pushes to gateways waiting for an answer are sent again")]
    private static partial void LogSiloLost(ILogger logger, SiloAddress silo, int waiting);
}
