using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Sends a change to the route replica of every active silo and waits for all of them: a SUBACK or a retained PUBACK
/// that follows means the change is routable on every live silo. A silo that does not answer is retried until it
/// answers or membership no longer lists it as active (a silo that comes back catches up from a peer). This silo's
/// own replica is written directly, not through its replica grain: the grain would only forward the change to the same
/// <see cref="ReplicaWriter"/>, at the price of a call (a message, a hand-off to the grain and one back) on every
/// CONNECT, SUBSCRIBE and UNSUBSCRIBE.
/// </summary>
internal sealed partial class ReplicaBroadcaster(
    IClusterMembershipService membership,
    GrainRefs<IRouteReplicaGrain> replicaRefs,
    ReplicaWriter localReplica,
    ILocalSiloDetails localSilo,
    TimeProvider timeProvider,
    MqttMetrics metrics,
    ILogger<ReplicaBroadcaster> logger)
{
    private static readonly TimeSpan GiveUpAfter = TimeSpan.FromSeconds(30);
    private readonly Dictionary<long, Task> _inflight = [];
    private long _nextId;

    public async Task Apply(ClientRoutes routes)
    {
        // A traced SUBSCRIBE or CONNECT: the calls to the other silos' replicas are its children.
        using var span = MqttTracing.StartChild(MqttTracing.Operations.Replicate, routes.ClientId);
        await ForEachSilo(static (r, routes) => r.Apply(routes), static (w, routes) => w.ApplyAsync(routes), routes);
    }

    public Task ApplyRetained(RetainedUpdate update) =>
        ForEachSilo(static (r, update) => r.ApplyRetained(update), static (w, update) => w.ApplyRetainedAsync(update), update);

    /// <summary>
    /// Waits until this silo sees membership at <paramref name="version"/> or later, then until every change sent
    /// with an older view has completed (see <see cref="IRouteReplicaGrain.Barrier"/>).
    /// </summary>
    public async Task Barrier(MembershipVersion version)
    {
        if (membership.CurrentSnapshot.Version < version)
        {
            await membership.Refresh(version);
        }

        Task[] pending;
        lock (_inflight)
        {
            // Changes registered from here on read a snapshot at least as new as the one just seen.
            pending = [.. _inflight.Values];
        }

        try
        {
            await Task.WhenAll(pending);
        }
        catch
        {
            // Failures of those changes were handled (and logged) where they were sent; only their end matters here.
        }
    }

    private async Task ForEachSilo<T>(Func<IRouteReplicaGrain, T, Task> action, Func<ReplicaWriter, T, Task> local, T change)
    {
        long id;
        ClusterMembershipSnapshot view;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_inflight)
        {
            // Registering and reading the membership view under one lock is what makes Barrier sound. The calls start
            // after the lock: starting a grain call can run the callee inline, which must not happen under a lock
            // every session on this silo takes.
            id = ++_nextId;
            _inflight[id] = done.Task;
            view = membership.CurrentSnapshot;
        }

        try
        {
            var tasks = new List<Task>(view.Members.Count);
            foreach (var member in view.Members.Values)
            {
                if (member.Status == SiloStatus.Active)
                {
                    tasks.Add(ApplyTo(member.SiloAddress, action, local, change));
                }
            }

            await Task.WhenAll(tasks);
        }
        finally
        {
            lock (_inflight)
            {
                _inflight.Remove(id);
            }

            done.SetResult();
        }
    }

    private async Task ApplyTo<T>(SiloAddress silo, Func<IRouteReplicaGrain, T, Task> action, Func<ReplicaWriter, T, Task> local, T change)
    {
        var replica = silo.Equals(localSilo.SiloAddress) ? null : replicaRefs.Get(silo.ToParsableString());
        var started = timeProvider.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await (replica is null ? local(localReplica, change) : action(replica, change));
                return;
            }
            catch (Exception ex)
            {
                if (!IsActive(silo))
                {
                    // Gone: when it comes back it catches up from a peer, so nothing is owed to it.
                    return;
                }

                if (timeProvider.GetElapsedTime(started) > GiveUpAfter)
                {
                    metrics.ReplicaApplyFailures.Add(1);
                    LogGaveUp(logger, ex, silo, attempt);
                    return;
                }

                LogRetrying(logger, silo, attempt, ex.GetType().Name);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 50 * attempt)));
                if (!IsActive(silo))
                {
                    return;
                }
            }
        }
    }

    private bool IsActive(SiloAddress silo) =>
        membership.CurrentSnapshot.Members.TryGetValue(silo, out var member) && member.Status == SiloStatus.Active;

    [LoggerMessage(Level = LogLevel.Information, Message = "Replica change to silo {Silo} failed (attempt {Attempt}: {Error}); retrying while it is active")]
    private static partial void LogRetrying(ILogger logger, SiloAddress silo, int attempt, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Replica change to silo {Silo} still failing after {Attempts} attempts; left to the digest repair")]
    private static partial void LogGaveUp(ILogger logger, Exception ex, SiloAddress silo, int attempts);
}
