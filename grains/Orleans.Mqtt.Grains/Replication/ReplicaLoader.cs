using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>Fills the route table from the durable replica before the silo takes calls.</summary>
internal sealed partial class ReplicaLoader(RouteTable table, IReplicaStore store, MqttMetrics metrics, ILogger<ReplicaLoader> logger)
    : ILifecycleParticipant<ISiloLifecycle>
{
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(ReplicaLoader), ServiceLifecycleStage.ApplicationServices, LoadAsync);

    private async Task LoadAsync(CancellationToken cancellationToken)
    {
        var (routes, retained) = await store.LoadAsync();
        foreach (var r in routes)
        {
            table.Apply(r);
        }

        foreach (var u in retained)
        {
            table.ApplyRetained(u);
        }

        metrics.ObserveReplica(() => table.ClientCount, () => table.SubscriptionCount, () => table.RetainedCount, () => table.ExactSubscriptionCount);
        LogLoaded(logger, routes.Count, retained.Count);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Route replica loaded: {Sessions} persistent sessions, {Retained} retained messages")]
    private static partial void LogLoaded(ILogger logger, int sessions, int retained);
}
