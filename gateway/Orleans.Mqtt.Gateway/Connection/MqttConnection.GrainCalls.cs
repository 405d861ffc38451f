using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

/// <summary>The grain calls a connection waits on while its client waits, as named in metrics and logs.</summary>
internal enum GrainCall
{
    /// <summary>Routing publishes through a topic shard (<c>ITopicShardGrain.Publish</c>, <c>PublishBatch</c>).</summary>
    Publish,

    /// <summary><c>IClientSessionGrain.IsInboundQos2Pending</c>: whether a QoS 2 packet id is a duplicate.</summary>
    Qos2Pending,

    /// <summary><c>IClientSessionGrain.AddInboundQos2</c>: recording a routed QoS 2 packet id.</summary>
    Qos2Record,

    /// <summary><c>IClientSessionGrain.ReleaseInboundQos2</c>: PUBREL.</summary>
    Qos2Release,

    /// <summary><c>IClientSessionGrain.AcknowledgeBatch</c>: the client's PUBACK, PUBREC and PUBCOMP.</summary>
    Acknowledge,

    /// <summary><c>IClientSessionGrain.Subscribe</c>.</summary>
    Subscribe,

    /// <summary><c>IClientSessionGrain.Unsubscribe</c>.</summary>
    Unsubscribe,

    /// <summary><c>IClientSessionGrain.Disconnect</c>: telling the session the connection ended.</summary>
    Disconnect,
}

// The bound on the grain calls a client waits on. Orleans answers a call to a silo that was killed only after its
// 30 s response timeout (nobody else answers it), so each call gets Mqtt:PublishTimeout through its CancellationToken
// (shared with the calls that start close together, CallDeadlines, so it may get up to an eighth more): Orleans then
// completes it at once on this side and drops it at the grain if it is still queued there. A call that
// is safe to run twice (it changes nothing, or running it again changes nothing more) is sent once more, which by then
// usually reaches a new activation; the caller answers the client for one that still fails.
internal sealed partial class MqttConnection
{
    private static readonly string[] CallTags = ["publish", "qos2_pending", "qos2_record", "qos2_release", "acknowledge", "subscribe", "unsubscribe", "disconnect"];
    private static readonly KeyValuePair<string, object?> RetriedTag = new("outcome", "retried");
    private static readonly KeyValuePair<string, object?> FailedTag = new("outcome", "failed");

    /// <summary>
    /// Makes a grain call bounded by <c>Mqtt:PublishTimeout</c> (<see cref="CallDeadlines"/>; and by <c>Mqtt:SiloLossGrace</c> once the gateway loses a
    /// silo while it is under way, <see cref="SiloLossWatch"/>), once more after a timeout or failure when
    /// <paramref name="retry"/>. False when no attempt succeeded (counted and logged): the caller answers the client.
    /// </summary>
    public async Task<(bool Ok, T Result)> CallBoundedAsync<TState, T>(GrainCall call, TState state, Func<TState, CancellationToken, Task<T>> invoke, bool retry)
    {
        var bound = _gateway.Options.PublishTimeout;
        for (var attempt = 0; ; attempt++)
        {
            // The bound, cut short to Mqtt:SiloLossGrace when the gateway loses its connection to a silo meanwhile: the
            // call may be in that silo, and nobody would answer it. A retry takes the deadline of calls starting now.
            var deadline = _gateway.CallDeadlines.Next(bound);
            try
            {
                return (true, await invoke(state, deadline.Token));
            }
            catch (Exception ex)
            {
                var timedOut = ex is OperationCanceledException && deadline.Token.IsCancellationRequested;
                var cutShort = timedOut && deadline.Lost.IsCancellationRequested && !deadline.TimedOut;
                var again = retry && attempt == 0 && !_gateway.IsStopping;
                _gateway.Metrics.GrainCallsUnanswered.Add(1, new KeyValuePair<string, object?>("call", CallTags[(int)call]), again ? RetriedTag : FailedTag);
                if (WithinConnectionLogBudget())
                {
                    var what = cutShort ? $"no answer within {_gateway.SiloLoss.Grace} (Mqtt:SiloLossGrace) after the gateway lost its connection to a silo"
                        : timedOut ? $"no answer within {bound} (Mqtt:PublishTimeout)"
                        : ex.GetType().Name + ": " + ex.Message;
                    if (again)
                    {
                        LogGrainCallRetried(_logger, CallTags[(int)call], _clientId, what);
                    }
                    else
                    {
                        LogGrainCallFailed(_logger, CallTags[(int)call], _clientId, what);
                    }
                }

                if (!again)
                {
                    return (false, default!);
                }
            }
        }
    }

    /// <summary><see cref="CallBoundedAsync{TState, T}"/> for a call without a result.</summary>
    public Task<(bool Ok, bool Result)> CallBoundedAsync<TState>(GrainCall call, TState state, Func<TState, CancellationToken, Task> invoke, bool retry) =>
        CallBoundedAsync(call, (state, invoke), static async (s, cancellationToken) =>
        {
            await s.invoke(s.state, cancellationToken);
            return true;
        }, retry);

    /// <summary>
    /// A session call that could not be retried safely got no answer: the connection closes (MQTT 5: DISCONNECT 0x80)
    /// so the client reconnects and resumes the session, which sends what was not acknowledged again.
    /// </summary>
    public void CloseForUnresponsiveSession() => CloseByServer(CloseReason.SessionUnresponsive);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Grain call {Call} of client {ClientId} failed ({What}); trying once more")]
    private static partial void LogGrainCallRetried(ILogger logger, string call, string? clientId, string what);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Grain call {Call} of client {ClientId} failed ({What}); given up, the client is answered")]
    private static partial void LogGrainCallFailed(ILogger logger, string call, string? clientId, string what);
}
