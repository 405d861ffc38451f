using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Ends expired sessions and publishes due delayed wills actively, not only when the client id comes back, and sets
/// the sessions of dead gateways offline (their wills go out, persistent sessions keep queueing). Each silo handles
/// its slice of the client ids (by a stable hash over the active silos), reading due times and connections from its
/// route replica; a client a round misses (views of membership differ for a moment) is found again next round. With
/// routes sharded by topic a change of only a persistent session's presence reaches only some silos, so a session is
/// handled by the one that always has its newest routes: its home, or where it fails over when the home is lost
/// (<see cref="RouteHolders.FirstEntryHolder"/>).
/// </summary>
internal sealed partial class SessionSweeper(
    RouteTable table,
    RouteHolders holders,
    IClusterMembershipService membership,
    ILocalSiloDetails localSilo,
    IGrainFactory grainFactory,
    DeadGateways deadGateways,
    MqttMetrics metrics,
    IOptions<MqttBrokerOptions> options,
    TimeProvider timeProvider,
    ILogger<SessionSweeper> logger) : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private const int MaxPerRound = 1000;
    private const int MaxOfflinePerRound = 20_000;
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

            var snapshot = membership.CurrentSnapshot;
            var calls = new List<Task>();
            var due = new List<string>();
            if (holders.Sharded)
            {
                table.CollectDueForSweep(timeProvider.GetUtcNow().UtcDateTime, due, MaxPerRound, routes => IsFirstEntryHolder(snapshot, routes));
            }
            else
            {
                table.CollectDueForSweep(timeProvider.GetUtcNow().UtcDateTime, due, MaxPerRound);
            }

            foreach (var clientId in due)
            {
                if (holders.Sharded || Slice(clientId, silos.Count) == mine)
                {
                    calls.Add(grainFactory.GetGrain<IClientSessionGrain>(clientId).ExpireIfDue());
                }
            }

            await OfflineSessionsOfDeadGatewaysAsync(snapshot, silos.Count, mine, calls);
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

    private async Task OfflineSessionsOfDeadGatewaysAsync(ClusterMembershipSnapshot snapshot, int silos, int mine, List<Task> calls)
    {
        var gateways = new HashSet<string>(StringComparer.Ordinal);
        table.CollectGateways(gateways);
        if (gateways.Count == 0)
        {
            return;
        }

        var dead = await grainFactory.GetGrain<IGatewayDirectoryGrain>(0).FindDead([.. gateways]);
        deadGateways.Set(dead);
        var connections = new List<(string ClientId, long ConnectionId)>();
        foreach (var gatewayId in dead)
        {
            connections.Clear();
            table.CollectConnectedThrough(gatewayId, connections);
            foreach (var (clientId, connectionId) in connections)
            {
                if (IsMine(snapshot, clientId, silos, mine))
                {
                    if (calls.Count < MaxOfflinePerRound)
                    {
                        calls.Add(SetOfflineAsync(clientId, connectionId, gatewayId));
                    }
                }
                else if (holders.Sharded)
                {
                    // Its home (or failover silo) sets it offline; the change of presence that follows may not be sent
                    // here, so this silo's copy forgets the dead connection itself.
                    table.ForgetPresence(clientId, gatewayId, connectionId);
                }
            }
        }
    }

    private async Task SetOfflineAsync(string clientId, long connectionId, string gatewayId)
    {
        // As if the connection was lost: the will goes out (after its delay), a persistent session keeps queueing.
        var will = await grainFactory.GetGrain<IClientSessionGrain>(clientId).Disconnect(connectionId, DisconnectKind.ConnectionLost);
        metrics.SessionsOwnerLost.Add(1);
        LogSetOffline(logger, clientId, gatewayId);
        if (will is not null)
        {
            await grainFactory.GetGrain<ITopicShardGrain>(Topics.MqttTopic.ShardOf(will.Topic, options.Value.TopicShards)).Publish(will);
        }
    }

    private bool IsMine(ClusterMembershipSnapshot snapshot, string clientId, int silos, int mine) =>
        holders.Sharded
            ? localSilo.SiloAddress.Equals(RouteHolders.FirstEntryHolder(snapshot, clientId, table.Get(clientId)?.Home))
            : Slice(clientId, silos) == mine;

    private bool IsFirstEntryHolder(ClusterMembershipSnapshot snapshot, ClientRoutes routes) =>
        localSilo.SiloAddress.Equals(RouteHolders.FirstEntryHolder(snapshot, routes.ClientId, routes.Home));

    private static int Slice(string clientId, int silos) => Topics.MqttTopic.ShardOf(clientId, silos);

    [LoggerMessage(Level = LogLevel.Information, Message = "Client {ClientId} set offline: its gateway {GatewayId} is dead")]
    private static partial void LogSetOffline(ILogger logger, string clientId, string gatewayId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session sweep failed; the next round retries")]
    private static partial void LogSweepFailed(ILogger logger, Exception ex);
}
