using Orleans.Concurrency;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Answers <see cref="ISiloLossGrain"/> from this silo's <see cref="SiloLossSignal"/>. A stateless worker, so the silo
/// a gateway's call reaches answers it (never the lost one), and reentrant: its calls only wait.
/// </summary>
[StatelessWorker(1)]
[Reentrant]
internal sealed class SiloLossGrain(SiloLossSignal signal) : Grain, ISiloLossGrain
{
    public Task<bool> WaitForSiloLoss(TimeSpan lostAgo, TimeSpan timeout) => signal.WaitAsync(lostAgo, timeout);
}
