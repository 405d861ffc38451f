using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// The silo's pushes to gateways. Grains hand their deliveries over and go on with their next turn; one lane per
/// gateway process (its observer reference) sends them in the order they were handed over, merging whatever queued up
/// meanwhile into one push. So a slow or dead gateway holds up nobody but its own lane, and a busy silo pushes once per
/// gateway per round trip, not once per message. A gateway restarted under the same id is a new process with a new
/// reference and gets its own lane: deliveries for its connections never travel with (or wait behind) those still
/// addressed to the process that died. Pushes to a gateway known dead are dropped (its QoS 1/2 messages stay in flight
/// in their sessions and go out again when the clients resume elsewhere). A push that fails while the gateway is not
/// known dead is sent again (QoS 1/2 only, with DUP set, a few times): its messages are in flight in their sessions,
/// which send nothing more to a connected client until it acknowledges them, so one lost push would hold that client's
/// window, with a full queue and dropped messages behind it, for as long as the connection lasts. When the silo stops,
/// the lanes push what they hold before Orleans stops its messaging (<see cref="StopAsync"/>); what they cannot is
/// counted and logged.
/// </summary>
internal sealed partial class GatewayOutbox(DeadGateways deadGateways, MqttMetrics metrics, TimeProvider timeProvider, ILogger<GatewayOutbox> logger)
    : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private readonly DeadGateways _deadGateways = deadGateways;
    private readonly MqttMetrics _metrics = metrics;
    private readonly ILogger _logger = logger;
    private readonly TimeProvider _timeProvider = timeProvider;

    /// <summary>QoS 0 deliveries a lane holds at most; further ones are dropped and counted (QoS 1/2 ones are never dropped here).</summary>
    public const int MaxQueuedQos0 = 100_000;

    private const int MaxPushSize = 4096;

    // A failed push is tried again for this long before its QoS 1/2 messages are left to their sessions' resend on
    // reconnect. A session sends a connected client nothing more until it acknowledges what is in flight, so a push
    // given up while the client stays connected freezes that client: after a silo kill, pushes to a live gateway were
    // seen failing for 30 s, longer than five attempts of the 5 s push timeout. The bound is for a gateway that
    // neither answers nor is declared dead (a killed process whose id another process has taken over).
    private static readonly TimeSpan MaxRetryTime = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan RetryPause = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// How long a stopping silo gives its lanes to push what they hold: one push timeout, so a push under way gets its
    /// answer or its timeout. A lane whose gateway answers is done in a round trip; this bound is for one that does not.
    /// </summary>
    public static readonly TimeSpan StopDrainTime = TimeSpan.FromSeconds(5);

    // Lanes end promptly once _stopping is cancelled (every wait of theirs observes it); this only bounds a surprise.
    private static readonly TimeSpan LaneExitTime = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<IGatewayObserver, Lane> _lanes = new();

    // Cancelled when the stop gives up on the lanes. Never disposed (it holds no timer or wait handle): a send racing
    // the stop may still start a lane on its token, which must then end at once, not throw.
    private readonly CancellationTokenSource _stopping = new();

    // Set when the stop begins: sends from then on are not queued. The counts are what the stop's log line reports.
    private volatile bool _stopped;
    private int _stopStarted;
    private long _pushedAtStop;
    private long _droppedAtStop;
    private long _leftToSessionsAtStop;

    // Cancelled when a silo is declared dead (RetryPushesInFlight), then replaced: every push waiting for its answer
    // at that moment stops waiting and is sent again.
    private CancellationTokenSource _siloLost = new();

    /// <summary>Queues deliveries for one gateway; returns at once.</summary>
    public void Send(GatewayPresence presence, IReadOnlyList<Delivery> deliveries)
    {
        if (deliveries.Count == 0)
        {
            return;
        }

        if (_deadGateways.Contains(presence.GatewayId))
        {
            Drop(deliveries, DropReason.GatewayDead);
            return;
        }

        if (_stopped)
        {
            // Nothing on this silo should send once its grains are gone; should something, it is not held back.
            DropAtStop(deliveries);
            return;
        }

        var lane = _lanes.GetOrAdd(presence.Gateway, static (gateway, state) => state.Outbox.StartLane(gateway, state.GatewayId), (Outbox: this, presence.GatewayId));
        lane.Enqueue(deliveries);
    }

    /// <summary>
    /// A silo was declared dead: pushes still waiting for the gateway's answer are sent again now (QoS 1/2, with DUP),
    /// not after the 5 s push timeout. After a silo kill, a push to a live gateway whose answer travelled through the
    /// killed silo was seen waiting out that timeout, which stalled its subscriber for 6 s; by the time the silo is
    /// declared dead, Orleans no longer routes through it. Returns how many pushes were waiting.
    /// </summary>
    public int RetryPushesInFlight()
    {
        var lost = Interlocked.Exchange(ref _siloLost, new CancellationTokenSource());
        var waiting = 0;
        foreach (var lane in _lanes.Values)
        {
            waiting += lane.Waiting ? 1 : 0;
        }

        // Not disposed: a push may be about to register on its token; nothing but this cancellation is attached to it.
        lost.Cancel();
        return waiting;
    }

    /// <summary>
    /// Drains the lanes when the silo stops, after its grains are deactivated (Orleans does that in the stop of
    /// <see cref="ServiceLifecycleStage.GrainDeactivation"/>, so nothing here sends any more) and before Orleans
    /// blocks application messages (the stop of <see cref="ServiceLifecycleStage.RuntimeServices"/>), after which a
    /// push would only fail.
    /// </summary>
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(GatewayOutbox), ServiceLifecycleStage.ApplicationServices, _ => Task.CompletedTask, ct => StopAsync(StopDrainTime, ct));

    /// <summary>
    /// Pushes what the lanes hold, for at most <paramref name="drainTime"/> (less when <paramref name="cancellationToken"/>,
    /// the silo's stop deadline, fires first), then gives up on the rest and writes one log line with the counts.
    /// Guaranteed: every delivery handed over before the stop is pushed, or counted here: a QoS 0 one as dropped
    /// (<see cref="DropReason.SiloStopping"/>), a QoS 1/2 one as left to its session, which holds it in flight and
    /// sends it again with DUP when the client resumes (a session handed over with messages in flight closes its
    /// connection so that the client does). Not guaranteed: that a pushed delivery was written to its client (the
    /// gateway may have lost the connection: counted there), nor, for QoS 0, the order against a newer message of the
    /// same topic that the topic's shard, activated again on another silo, routed through that silo meanwhile.
    /// Deliveries sent once the stop has begun are not queued: counted the same way, in the metric only if they come
    /// after the log line.
    /// </summary>
    public async Task StopAsync(TimeSpan drainTime, CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _stopStarted, 1) != 0)
        {
            return;
        }

        var started = _timeProvider.GetTimestamp();
        _stopped = true;
        var runs = new List<Task>(_lanes.Count);
        foreach (var lane in _lanes.Values)
        {
            // A completed lane pushes what it holds and ends.
            lane.Complete();
            runs.Add(lane.Run);
        }

        var all = Task.WhenAll(runs);
        if (!cancellationToken.IsCancellationRequested && drainTime > TimeSpan.Zero)
        {
            await all.WaitAsync(drainTime, _timeProvider, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        _stopping.Cancel();

        // Each lane that was still at work counts what it held as it ends (lanes started by a racing send too).
        foreach (var lane in _lanes.Values)
        {
            if (!runs.Contains(lane.Run))
            {
                runs.Add(lane.Run);
            }
        }

        await Task.WhenAll(runs).WaitAsync(LaneExitTime, _timeProvider).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        var pushed = Interlocked.Read(ref _pushedAtStop);
        var dropped = Interlocked.Read(ref _droppedAtStop);
        var left = Interlocked.Read(ref _leftToSessionsAtStop);
        var elapsed = _timeProvider.GetElapsedTime(started);
        if (dropped > 0 || left > 0)
        {
            LogStopLost(_logger, pushed, _lanes.Count, elapsed, dropped, left);
        }
        else
        {
            LogStopDrained(_logger, pushed, _lanes.Count, elapsed);
        }
    }

    /// <summary>
    /// Ends the lanes if the silo did not stop them (<see cref="StopAsync"/>): what they hold is counted and logged
    /// as at a stop, without waiting for a push.
    /// </summary>
    public void Dispose()
    {
        if (Volatile.Read(ref _stopStarted) == 0)
        {
            // Bounded by LaneExitTime: nothing is pushed, the lanes only count.
            StopAsync(TimeSpan.Zero, CancellationToken.None).GetAwaiter().GetResult();
        }
    }

    private Lane StartLane(IGatewayObserver gateway, string gatewayId)
    {
        var lane = new Lane(gateway, gatewayId, this);
        lane.Run = Task.Run(() => lane.RunAsync(_stopping.Token));
        return lane;
    }

    private static int CountQos0(IReadOnlyList<Delivery> deliveries)
    {
        var qos0 = 0;
        foreach (var d in deliveries)
        {
            qos0 += d.Qos == 0 ? 1 : 0;
        }

        return qos0;
    }

    private void Drop(IReadOnlyList<Delivery> deliveries, DropReason reason)
    {
        var qos0 = CountQos0(deliveries);
        if (qos0 > 0)
        {
            _metrics.CountDrop(reason, qos0);
        }
    }

    // What a stop could not push: QoS 0 is lost, counted as dropped; QoS 1/2 is in flight in its session, which sends
    // it again when the client resumes.
    private void DropAtStop(IReadOnlyList<Delivery> deliveries)
    {
        var qos0 = CountQos0(deliveries);
        if (qos0 > 0)
        {
            _metrics.CountDrop(DropReason.SiloStopping, qos0);
            Interlocked.Add(ref _droppedAtStop, qos0);
        }

        Interlocked.Add(ref _leftToSessionsAtStop, deliveries.Count - qos0);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Push of {Count} deliveries to gateway {GatewayId} failed (attempt {Attempt}; QoS 1/2 ones are sent again with DUP for up to {MaxRetryTime} while the gateway is not known dead, then left to their sessions' resend on reconnect)")]
    private static partial void LogPushFailed(ILogger logger, Exception ex, string gatewayId, int count, int attempt, TimeSpan maxRetryTime);

    [LoggerMessage(Level = LogLevel.Information, Message = "Push of {Count} deliveries to gateway {GatewayId} went through on attempt {Attempt}, {Elapsed} after the first")]
    private static partial void LogPushRecovered(ILogger logger, string gatewayId, int count, int attempt, TimeSpan elapsed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Silo stopping: {Pushed} deliveries pushed to {Lanes} gateway processes in {Elapsed}; not pushed: {Dropped} QoS 0 ones (dropped) and {Left} QoS 1/2 ones (left in flight in their sessions, sent again with DUP when their clients resume)")]
    private static partial void LogStopLost(ILogger logger, long pushed, int lanes, TimeSpan elapsed, long dropped, long left);

    [LoggerMessage(Level = LogLevel.Information, Message = "Silo stopping: {Pushed} deliveries pushed to {Lanes} gateway processes in {Elapsed}; none left unpushed")]
    private static partial void LogStopDrained(ILogger logger, long pushed, int lanes, TimeSpan elapsed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway {GatewayId} has {Count} QoS 0 deliveries queued; dropping newer ones until it catches up ({Suppressed} dropped since the last such line; one line per 10 s)")]
    private static partial void LogBacklog(ILogger logger, string gatewayId, int count, long suppressed);

    private sealed class Lane(IGatewayObserver gateway, string gatewayId, GatewayOutbox outbox)
    {
        private readonly Channel<IReadOnlyList<Delivery>> _queue =
            Channel.CreateUnbounded<IReadOnlyList<Delivery>>(new UnboundedChannelOptions { SingleReader = true });
        private readonly LogLimiter _backlogLog = new(outbox._timeProvider, LogLimiter.DefaultInterval);
        private int _queuedQos0;
        private volatile bool _waiting;

        // The push under way (narrowed to its QoS 1/2 part while it is being retried): what the lane counts as not
        // pushed should the stop cut it short.
        private IReadOnlyList<Delivery>? _unsent;

        /// <summary>Whether a push of this lane is waiting for the gateway's answer.</summary>
        public bool Waiting => _waiting;

        /// <summary>The lane's loop; it ends when the lane is completed and empty, or at the stop.</summary>
        public Task Run { get; set; } = Task.CompletedTask;

        /// <summary>No more deliveries: the lane pushes what it holds and ends.</summary>
        public void Complete() => _queue.Writer.TryComplete();

        public void Enqueue(IReadOnlyList<Delivery> deliveries)
        {
            var qos0 = CountQos0(deliveries);
            if (qos0 > 0 && Interlocked.Add(ref _queuedQos0, qos0) > MaxQueuedQos0)
            {
                // A gateway that cannot keep up: QoS 0 may be dropped, QoS 1/2 stay in their sessions' windows anyway.
                Interlocked.Add(ref _queuedQos0, -qos0);
                outbox._metrics.CountDrop(DropReason.GatewayBacklog, qos0);

                // One line per interval, not one per dropped batch: a flood drops batches by the hundred thousand.
                if (_backlogLog.TryEnter(qos0, out var suppressed))
                {
                    LogBacklog(outbox._logger, gatewayId, Volatile.Read(ref _queuedQos0), suppressed);
                }

                if (qos0 == deliveries.Count)
                {
                    return;
                }

                deliveries = [.. deliveries.Where(d => d.Qos > 0)];
            }

            if (!_queue.Writer.TryWrite(deliveries))
            {
                // Completed by the stop after the send saw the outbox still running.
                outbox.DropAtStop(deliveries);
            }
        }

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            var batch = new List<Delivery>();
            var reader = _queue.Reader;
            try
            {
                while (await reader.WaitToReadAsync(cancellationToken))
                {
                    batch.Clear();
                    while (batch.Count < MaxPushSize && reader.TryRead(out var items))
                    {
                        batch.AddRange(items);
                    }

                    Interlocked.Add(ref _queuedQos0, -CountQos0(batch));
                    _unsent = batch;
                    await PushAsync(batch, cancellationToken);
                    _unsent = null;
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // The stop gave up on this lane: what it still holds is counted, and what a racing send adds after.
                _queue.Writer.TryComplete();
                if (_unsent is { } unsent)
                {
                    outbox.DropAtStop(unsent);
                }

                while (reader.TryRead(out var items))
                {
                    outbox.DropAtStop(items);
                }
            }
        }

        private async Task PushAsync(List<Delivery> batch, CancellationToken cancellationToken)
        {
            IReadOnlyList<Delivery> push = batch;
            var started = outbox._timeProvider.GetTimestamp();
            for (var attempt = 1; ; attempt++)
            {
                if (outbox._deadGateways.Contains(gatewayId))
                {
                    outbox.Drop(push, DropReason.GatewayDead);
                    return;
                }

                try
                {
                    // Read before the push goes out: a silo lost from then on cuts its wait short.
                    var siloLost = Volatile.Read(ref outbox._siloLost).Token;
                    _waiting = true;
                    try
                    {
                        // The stop's own token too: a push the stop gives up on is counted by the lane, not waited for.
                        await gateway.Deliver([.. push]).WaitAsync(siloLost).WaitAsync(cancellationToken);
                    }
                    finally
                    {
                        _waiting = false;
                    }

                    if (outbox._stopped)
                    {
                        Interlocked.Add(ref outbox._pushedAtStop, push.Count);
                    }

                    if (attempt > 1)
                    {
                        LogPushRecovered(outbox._logger, gatewayId, push.Count, attempt, outbox._timeProvider.GetElapsedTime(started));
                    }

                    return;
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    // The first failure and every tenth after it: a gateway refusing at once would log five lines a second.
                    if (attempt % 10 == 1)
                    {
                        LogPushFailed(outbox._logger, ex, gatewayId, push.Count, attempt, MaxRetryTime);
                    }

                    outbox.Drop(push, DropReason.GatewayUnreachable);
                    if (outbox._timeProvider.GetElapsedTime(started) >= MaxRetryTime)
                    {
                        return;
                    }

                    // The gateway may have written them before the failure reached here: again, the client sees a
                    // copy with DUP and the same packet id, which MQTT allows for QoS 1/2. QoS 0 is not sent twice.
                    push = RetryCopies(push);
                    _unsent = push;
                    if (push.Count == 0)
                    {
                        return;
                    }
                }

                await Task.Delay(RetryPause, outbox._timeProvider, cancellationToken);
            }
        }

        private static List<Delivery> RetryCopies(IReadOnlyList<Delivery> push)
        {
            var again = new List<Delivery>(push.Count);
            foreach (var d in push)
            {
                if (d.Qos > 0)
                {
                    again.Add(d.Kind == DeliveryKind.Publish ? d with { Dup = true } : d);
                }
            }

            return again;
        }
    }
}
