using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Writes the state of the persistent sessions homed on this silo to <c>Mqtt:SessionReplicas - 1</c> further silos
/// (<see cref="SessionHolders"/>) and reads it back when a session must be activated away from a lost home. One lane
/// per target silo sends the copies in the order they were handed over, merging whatever queued up meanwhile into
/// one <see cref="ISessionCopyGrain.Store"/> call per round trip, as <see cref="GatewayOutbox"/> does for gateways.
/// A holder that membership no longer lists as active is replaced by the next silo in rendezvous order; one that is
/// active but fails is retried until it answers, membership drops it, or a time limit passes (then the save fails).
/// </summary>
internal sealed partial class SessionReplicator(
    IClusterMembershipService membership,
    GrainRefs<ISessionCopyGrain> copyRefs,
    GrainRefs<ISessionCopyGrainV2> askingCopyRefs,
    SiloManifests manifests,
    SessionCopyStore localCopies,
    ILocalSiloDetails localSilo,
    IOptions<MqttBrokerOptions> options,
    TimeProvider timeProvider,
    MqttMetrics metrics,
    ILogger<SessionReplicator> logger) : IDisposable
{
    private readonly TimeProvider _timeProvider = timeProvider;
    private readonly MqttMetrics _metrics = metrics;
    private readonly ILogger _logger = logger;
    private const int MaxBatch = 512;
    private static readonly TimeSpan GiveUpAfter = TimeSpan.FromSeconds(30);
    private readonly ConcurrentDictionary<SiloAddress, Lane> _lanes = new();
    private readonly CancellationTokenSource _stopping = new();

    // Whether a membership version has any silo to rank (SessionHolders.AnyCandidate), kept for the version it was
    // asked of: a save asks twice (PlanCopy, then WriteAsync), and walking the members' immutable dictionary each time
    // was about 0.8 % of the standalone broker's CPU in a connect storm, where the answer never changes.
    private CandidateCheck? _candidates;

    /// <summary>How many silos besides the home hold a copy, at most.</summary>
    private int Extra => options.Value.SessionReplicas - 1;

    /// <summary>
    /// Where a save of <paramref name="clientId"/>'s session would write its copy first, for its routes to ride along
    /// (<see cref="RoutesWithCopy"/>); null when it writes none (<c>Mqtt:SessionReplicas</c> 1, no other active silo).
    /// </summary>
    public RoutesWithCopy? PlanCopy(string clientId)
    {
        var ranked = Ranked(clientId);
        return ranked is null ? null : new RoutesWithCopy(ranked[0], ranked);
    }

    /// <summary>
    /// Writes <paramref name="clientId"/>'s session <paramref name="state"/> at <paramref name="version"/> to the
    /// session's holders (a null state deletes their copies); completes when every holder has it on disk. Nothing to
    /// do, and no copy made, with <c>Mqtt:SessionReplicas</c> 1 or no other active silo. With <paramref name="routes"/>
    /// (from <see cref="PlanCopy"/>) the holders are the ones planned, and the first takes the routes offered to it
    /// along with the copy.
    /// </summary>
    public Task WriteAsync(string clientId, long version, SessionState? state, RoutesWithCopy? routes = null)
    {
        var ranked = routes is null ? Ranked(clientId) : routes.Ranked;
        if (ranked is null)
        {
            return Task.CompletedTask;
        }

        var write = new HolderWrite(this, new SessionCopy(clientId, version, state), ranked, Math.Min(Extra, ranked.Count), routes);
        var task = write.RunAsync();
        routes?.Close();
        return task;
    }

    private List<SiloAddress>? Ranked(string clientId)
    {
        if (Extra <= 0)
        {
            return null;
        }

        var snapshot = membership.CurrentSnapshot;
        var candidates = _candidates;
        if (candidates is null || candidates.Version != snapshot.Version)
        {
            candidates = new CandidateCheck(snapshot.Version, SessionHolders.AnyCandidate(snapshot, localSilo.Name, localSilo.SiloAddress));
            _candidates = candidates;
        }

        if (!candidates.Any)
        {
            // A single silo (the standalone broker): nobody to rank, and this runs on every save of every session.
            return null;
        }

        var ranked = SessionHolders.Rank(snapshot, clientId, localSilo.Name, localSilo.SiloAddress);
        return ranked.Count == 0 ? null : ranked;
    }

    /// <summary>
    /// Every copy of <paramref name="clientId"/>'s session that an active silo holds (this one included): the holders
    /// may have changed since the home wrote them, so all are asked. A silo that does not answer is skipped.
    /// </summary>
    public async Task<List<SessionCopy>> FetchAllAsync(string clientId)
    {
        var calls = new List<Task<SessionCopy?>> { localCopies.FetchAsync(clientId) };
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            if (member.Status == SiloStatus.Active && !member.SiloAddress.Equals(localSilo.SiloAddress))
            {
                calls.Add(copyRefs.Get(member.SiloAddress.ToParsableString()).Fetch(clientId));
            }
        }

        var copies = new List<SessionCopy>(calls.Count);
        foreach (var call in calls)
        {
            try
            {
                if (await call is { } copy)
                {
                    copies.Add(copy);
                }
            }
            catch (Exception ex)
            {
                LogFetchFailed(_logger, ex, clientId);
            }
        }

        return copies;
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }

    private bool IsActive(SiloAddress silo) =>
        membership.CurrentSnapshot.Members.TryGetValue(silo, out var member) && member.Status == SiloStatus.Active;

    // The copy's write to silo, with routes riding along: which of their asked shards an activation there serves.
    private Task<int[]> SendAsync(SiloAddress silo, SessionCopy copy, (ClientRoutes Routes, int[] Ask)? routes)
    {
        var lane = _lanes.GetOrAdd(silo, static (target, replicator) => replicator.StartLane(target), this);
        return lane.Enqueue(copy, routes);
    }

    private Lane StartLane(SiloAddress silo)
    {
        var key = silo.ToParsableString();
        var lane = new Lane(copyRefs.Get(key), askingCopyRefs.Get(key), () => manifests.Serves(silo, askingCopyRefs.InterfaceType));
        _ = Task.Run(() => lane.RunAsync(_stopping.Token));
        return lane;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session copy of client {ClientId} to silo {Silo} failed (attempt {Attempt}: {Error}); retrying while the silo is active")]
    private static partial void LogRetrying(ILogger logger, string clientId, SiloAddress silo, int attempt, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Session copy of client {ClientId} to silo {Silo} still failing after {Attempts} attempts; the save fails")]
    private static partial void LogGaveUp(ILogger logger, Exception ex, string clientId, SiloAddress silo, int attempts);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading the session copies of client {ClientId} from a silo failed; that silo's copy is not considered")]
    private static partial void LogFetchFailed(ILogger logger, Exception ex, string clientId);

    // One save's writes to its holders; a holder that leaves membership hands its place to the next silo in rank.
    private sealed class HolderWrite(SessionReplicator replicator, SessionCopy copy, List<SiloAddress> ranked, int count, RoutesWithCopy? routes)
    {
        private readonly int _count = count;
        private int _next = count;

        public Task RunAsync()
        {
            if (_count == 1)
            {
                return WriteToAsync(ranked[0]);
            }

            var writes = new Task[_count];
            for (var i = 0; i < _count; i++)
            {
                writes[i] = WriteToAsync(ranked[i]);
            }

            return Task.WhenAll(writes);
        }

        private async Task WriteToAsync(SiloAddress silo)
        {
            var started = replicator._timeProvider.GetTimestamp();
            // Only the first attempt to the first holder carries the routes: a failed one hands them back to the route write.
            var carried = routes?.Take(silo);
            try
            {
                await WriteCarryingAsync(silo, started, carried);
            }
            finally
            {
                // Routes this write took and has not answered for (the replicator stopped mid-call): the route write
                // must not wait for them. After an answer this changes nothing.
                if (carried is not null)
                {
                    routes!.Carried(null);
                }
            }
        }

        private async Task WriteCarryingAsync(SiloAddress silo, long started, (ClientRoutes Routes, int[] Ask)? carried)
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    var served = await replicator.SendAsync(silo, copy, carried);
                    if (carried is not null)
                    {
                        routes!.Carried(served);
                    }

                    return;
                }
                catch (Exception ex) when (!replicator._stopping.IsCancellationRequested)
                {
                    if (carried is not null)
                    {
                        routes!.Carried(null);
                        carried = null;
                    }

                    if (!replicator.IsActive(silo))
                    {
                        // Gone: the next silo in rank holds the copy instead (none left: fewer silos than replicas).
                        var next = Interlocked.Increment(ref _next) - 1;
                        if (next >= ranked.Count)
                        {
                            return;
                        }

                        silo = ranked[next];
                        attempt = 0;
                        started = replicator._timeProvider.GetTimestamp();
                        continue;
                    }

                    replicator._metrics.SessionReplicaWriteFailures.Add(1);
                    if (replicator._timeProvider.GetElapsedTime(started) > GiveUpAfter)
                    {
                        LogGaveUp(replicator._logger, ex, copy.ClientId, silo, attempt);
                        throw;
                    }

                    LogRetrying(replicator._logger, copy.ClientId, silo, attempt, ex.GetType().Name);
                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 50 * attempt)), replicator._timeProvider);
                }
            }
        }
    }

    /// <summary>Whether membership <paramref name="Version"/> has a silo to rank besides this one.</summary>
    private sealed record CandidateCheck(MembershipVersion Version, bool Any);

    // servesAsking: whether the target silo's build serves ISessionCopyGrainV2; asked per call, since its manifest may
    // arrive after the lane starts.
    private sealed class Lane(ISessionCopyGrain target, ISessionCopyGrainV2 asking, Func<bool> servesAsking)
    {
        private readonly Channel<(SessionCopy Copy, (ClientRoutes Routes, int[] Ask)? Routes, TaskCompletionSource<int[]> Done)> _queue =
            Channel.CreateUnbounded<(SessionCopy, (ClientRoutes, int[])?, TaskCompletionSource<int[]>)>(new UnboundedChannelOptions { SingleReader = true });

        public Task<int[]> Enqueue(SessionCopy copy, (ClientRoutes Routes, int[] Ask)? routes)
        {
            var done = new TaskCompletionSource<int[]>(TaskCreationOptions.RunContinuationsAsynchronously);
            _queue.Writer.TryWrite((copy, routes, done));
            return done.Task;
        }

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            var copies = new List<SessionCopy>();
            var routes = new List<ClientRoutes>();
            var asks = new List<int[]>();

            // Each copy's waiter, with the index of its riding routes in the call (-1: none).
            var waiting = new List<(TaskCompletionSource<int[]> Done, int Routes)>();
            var reader = _queue.Reader;
            try
            {
                while (await reader.WaitToReadAsync(cancellationToken))
                {
                    copies.Clear();
                    routes.Clear();
                    asks.Clear();
                    waiting.Clear();
                    while (copies.Count < MaxBatch && reader.TryRead(out var item))
                    {
                        copies.Add(item.Copy);
                        waiting.Add((item.Done, item.Routes is null ? -1 : routes.Count));
                        if (item.Routes is { } riding)
                        {
                            routes.Add(riding.Routes);
                            asks.Add(riding.Ask);
                        }
                    }

                    try
                    {
                        int[][]? served = null;
                        if (routes.Count == 0)
                        {
                            await target.Store([.. copies]);
                        }
                        else if (servesAsking())
                        {
                            served = await asking.StoreWithRoutesAndAsk([.. copies], [.. routes], [.. asks]);
                        }
                        else
                        {
                            // A silo of the previous release (a rolling upgrade): the routes ride, nothing is asked, and
                            // the route write tells every changed shard's grain, as it did then.
                            await target.StoreWithRoutes([.. copies], [.. routes]);
                            served = new int[routes.Count][];
                            Array.Fill<int[]>(served, []);
                        }

                        foreach (var (done, index) in waiting)
                        {
                            done.TrySetResult(index < 0 ? [] : served![index]);
                        }
                    }
                    catch (Exception ex)
                    {
                        foreach (var (done, _) in waiting)
                        {
                            done.TrySetException(ex);
                        }
                    }
                }
            }
            catch (OperationCanceledException)
            {
                while (reader.TryRead(out var item))
                {
                    item.Done.TrySetCanceled(cancellationToken);
                }
            }
        }
    }
}
