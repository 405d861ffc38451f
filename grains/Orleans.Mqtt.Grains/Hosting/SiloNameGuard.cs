using Microsoft.Extensions.Logging;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Refuses to start a silo whose name another live silo already has. Sessions are placed on their home by the silo's
/// name (<see cref="SessionHomePlacement"/>), so two silos under one name (the same <c>Orleans:Name</c> given to
/// several silos, or a copied data directory) would send sessions to the silo that does not store them, where they
/// would start without their queues. An earlier run of this silo that the cluster has not yet declared dead has the
/// same name too; it does not answer, and the start goes on.
/// </summary>
internal sealed partial class SiloNameGuard(
    IClusterMembershipService membership,
    ILocalSiloDetails localSilo,
    GrainRefs<IRouteReplicaGrain> replicaRefs,
    ILogger<SiloNameGuard> logger) : ILifecycleParticipant<ISiloLifecycle>
{
    /// <summary>How long a silo of the same name has to answer before it counts as an earlier run, dead.</summary>
    internal static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(5);

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(SiloNameGuard), ServiceLifecycleStage.Active, CheckAsync);

    private async Task CheckAsync(CancellationToken cancellationToken)
    {
        foreach (var silo in membership.CurrentSnapshot.ActiveSilosNamed(localSilo.Name).Where(s => !s.Equals(localSilo.SiloAddress)))
        {
            if (await AnswersAsync(silo))
            {
                throw new OrleansConfigurationException(
                    $"The silo name '{localSilo.Name}' is already taken by the live silo {silo}. Each silo needs a name and a " +
                    "data directory of its own (Orleans:Name, Storage:DataDirectory): sessions are placed on the silo that stores them by its name.");
            }

            LogEarlierRun(logger, localSilo.Name, silo);
        }
    }

    private async Task<bool> AnswersAsync(SiloAddress silo)
    {
        try
        {
            await replicaRefs.Get(silo.ToParsableString()).IsReady().WaitAsync(AnswerTimeout);
            return true;
        }
        catch (Exception)
        {
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Silo {SiloName}: an earlier run of this silo, {SiloAddress}, is still listed as active but does not answer")]
    private static partial void LogEarlierRun(ILogger logger, string siloName, SiloAddress siloAddress);
}
