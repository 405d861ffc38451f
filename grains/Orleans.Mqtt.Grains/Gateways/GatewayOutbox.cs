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
/// window, with a full queue and dropped messages behind it, for as long as the connection lasts.
/// </summary>
internal sealed partial class GatewayOutbox(DeadGateways deadGateways, MqttMetrics metrics, TimeProvider timeProvider, ILogger<GatewayOutbox> logger) : IDisposable
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
    private readonly ConcurrentDictionary<IGatewayObserver, Lane> _lanes = new();
    private readonly CancellationTokenSource _stopping = new();

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

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }

    private Lane StartLane(IGatewayObserver gateway, string gatewayId)
    {
        var lane = new Lane(gateway, gatewayId, this);
        _ = Task.Run(() => lane.RunAsync(_stopping.Token));
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Push of {Count} deliveries to gateway {GatewayId} failed (attempt {Attempt}; QoS 1/2 ones are sent again with DUP for up to {MaxRetryTime} while the gateway is not known dead, then left to their sessions' resend on reconnect)")]
    private static partial void LogPushFailed(ILogger logger, Exception ex, string gatewayId, int count, int attempt, TimeSpan maxRetryTime);

    [LoggerMessage(Level = LogLevel.Information, Message = "Push of {Count} deliveries to gateway {GatewayId} went through on attempt {Attempt}, {Elapsed} after the first")]
    private static partial void LogPushRecovered(ILogger logger, string gatewayId, int count, int attempt, TimeSpan elapsed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway {GatewayId} has {Count} QoS 0 deliveries queued; dropping newer ones until it catches up ({Suppressed} dropped since the last such line; one line per 10 s)")]
    private static partial void LogBacklog(ILogger logger, string gatewayId, int count, long suppressed);

    private sealed class Lane(IGatewayObserver gateway, string gatewayId, GatewayOutbox outbox)
    {
        private readonly Channel<IReadOnlyList<Delivery>> _queue =
            Channel.CreateUnbounded<IReadOnlyList<Delivery>>(new UnboundedChannelOptions { SingleReader = true });
        private readonly LogLimiter _backlogLog = new(outbox._timeProvider, LogLimiter.DefaultInterval);
        private int _queuedQos0;
        private volatile bool _waiting;

        /// <summary>Whether a push of this lane is waiting for the gateway's answer.</summary>
        public bool Waiting => _waiting;

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

            _queue.Writer.TryWrite(deliveries);
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
                    await PushAsync(batch, cancellationToken);
                }
            }
            catch (OperationCanceledException)
            {
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
                        await gateway.Deliver([.. push]).WaitAsync(siloLost);
                    }
                    finally
                    {
                        _waiting = false;
                    }

                    if (attempt > 1)
                    {
                        LogPushRecovered(outbox._logger, gatewayId, push.Count, attempt, outbox._timeProvider.GetElapsedTime(started));
                    }

                    return;
                }
                catch (Exception ex)
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
