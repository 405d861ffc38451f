using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// The silo's pushes to gateways. Grains hand their deliveries over and go on with their next turn; one lane per
/// gateway sends them in the order they were handed over, merging whatever queued up meanwhile into one push. So a
/// slow or dead gateway holds up nobody but its own lane, and a busy silo pushes once per gateway per round trip,
/// not once per message. Pushes to a gateway known dead are dropped (its QoS 1/2 messages stay in flight in their
/// sessions and go out again when the clients resume elsewhere).
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
    private readonly ConcurrentDictionary<string, Lane> _lanes = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();

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

        var lane = _lanes.GetOrAdd(presence.GatewayId, static (id, outbox) => outbox.StartLane(id), this);
        lane.Enqueue(presence.Gateway, deliveries);
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }

    private Lane StartLane(string gatewayId)
    {
        var lane = new Lane(gatewayId, this);
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Push of {Count} deliveries to gateway {GatewayId} failed")]
    private static partial void LogPushFailed(ILogger logger, Exception ex, string gatewayId, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway {GatewayId} has {Count} QoS 0 deliveries queued; dropping newer ones until it catches up ({Suppressed} dropped since the last such line; one line per 10 s)")]
    private static partial void LogBacklog(ILogger logger, string gatewayId, int count, long suppressed);

    private sealed class Lane(string gatewayId, GatewayOutbox outbox)
    {
        private readonly Channel<(IGatewayObserver Gateway, IReadOnlyList<Delivery> Items)> _queue =
            Channel.CreateUnbounded<(IGatewayObserver, IReadOnlyList<Delivery>)>(new UnboundedChannelOptions { SingleReader = true });
        private readonly LogLimiter _backlogLog = new(outbox._timeProvider, LogLimiter.DefaultInterval);
        private int _queuedQos0;

        public void Enqueue(IGatewayObserver gateway, IReadOnlyList<Delivery> deliveries)
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

            _queue.Writer.TryWrite((gateway, deliveries));
        }

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            var batch = new List<Delivery>();
            var reader = _queue.Reader;
            try
            {
                while (await reader.WaitToReadAsync(cancellationToken))
                {
                    IGatewayObserver? gateway = null;
                    batch.Clear();
                    while (batch.Count < MaxPushSize && reader.TryRead(out var item))
                    {
                        // The newest reference wins: a gateway re-registering gets a new observer under the same id.
                        gateway = item.Gateway;
                        batch.AddRange(item.Items);
                    }

                    Interlocked.Add(ref _queuedQos0, -CountQos0(batch));
                    if (outbox._deadGateways.Contains(gatewayId))
                    {
                        outbox.Drop(batch, DropReason.GatewayDead);
                        continue;
                    }

                    try
                    {
                        await gateway!.Deliver([.. batch]);
                    }
                    catch (Exception ex)
                    {
                        outbox.Drop(batch, DropReason.GatewayUnreachable);
                        LogPushFailed(outbox._logger, ex, gatewayId, batch.Count);
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }
    }
}
