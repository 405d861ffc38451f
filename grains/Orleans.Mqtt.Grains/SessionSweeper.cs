using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Ends expired sessions and publishes due delayed wills actively, not only when the client id comes back. Each
/// silo sweeps the disconnected sessions of its slice of the client ids (by a stable hash over the active silos),
/// reading the due times from its route replica.
/// </summary>
internal sealed partial class SessionSweeper(
    RouteTable table,
    IClusterMembershipService membership,
    ILocalSiloDetails localSilo,
    IGrainFactory grainFactory,
    IOptions<MqttBrokerOptions> options,
    TimeProvider timeProvider,
    ILogger<SessionSweeper> logger) : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private const int MaxPerRound = 1000;
    private ITimer? _timer;
    private int _running;

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(SessionSweeper), ServiceLifecycleStage.Active, Start, Stop);

    public void Dispose() => _timer?.Dispose();

    private Task Start(CancellationToken cancellationToken)
    {
        var interval = options.Value.SessionSweepInterval;
        _timer = timeProvider.CreateTimer(_ => _ = SweepAsync(), null, interval, interval);
        return Task.CompletedTask;
    }

    private Task Stop(CancellationToken cancellationToken)
    {
        _timer?.Dispose();
        return Task.CompletedTask;
    }

    private async Task SweepAsync()
    {
        if (Interlocked.Exchange(ref _running, 1) == 1)
        {
            return;
        }

        try
        {
            var due = new List<string>();
            table.CollectDueForSweep(timeProvider.GetUtcNow().UtcDateTime, due, MaxPerRound);
            if (due.Count == 0)
            {
                return;
            }

            var silos = membership.CurrentSnapshot.Members.Values
                .Where(m => m.Status == SiloStatus.Active)
                .Select(m => m.SiloAddress)
                .OrderBy(a => a.ToParsableString(), StringComparer.Ordinal)
                .ToList();
            var mine = silos.IndexOf(localSilo.SiloAddress);
            if (mine < 0)
            {
                return;
            }

            var calls = new List<Task>();
            foreach (var clientId in due)
            {
                if (Slice(clientId, silos.Count) == mine)
                {
                    calls.Add(grainFactory.GetGrain<IClientSessionGrain>(clientId).ExpireIfDue());
                }
            }

            await Task.WhenAll(calls);
        }
        catch (Exception ex)
        {
            LogSweepFailed(logger, ex);
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    private static int Slice(string clientId, int silos) => Topics.MqttTopic.ShardOf(clientId, silos);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session sweep failed; the next round retries")]
    private static partial void LogSweepFailed(ILogger logger, Exception ex);
}
