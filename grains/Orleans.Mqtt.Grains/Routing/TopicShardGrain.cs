using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Protocol;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// One shard of the topic space. Publishes to a topic are handled one at a time here, which gives per-topic order.
/// QoS 0 copies go straight to the subscriber's gateway (one push per gateway); QoS 1/2 copies go to the
/// subscriber's session grain, which queues them durably and owns their acknowledgement. With routes sharded by topic
/// (<c>Mqtt:Routes:Sharding</c>) it runs on the first route holder of its shard, whose replica holds the shard's exact
/// subscriptions (<see cref="TopicShardPlacement"/>).
/// </summary>
[TopicShardPlacement]
internal sealed partial class TopicShardGrain(
    RouteTable routes,
    RouteHolders holders,
    IClusterMembershipService membership,
    ILocalSiloDetails localSilo,
    ReplicaBroadcaster replicas,
    ReplicaWriter writer,
    ReplicaSync sync,
    DeadGateways deadGateways,
    GatewayOutbox outbox,
    GrainRefs<IClientSessionGrain> sessionRefs,
    TimeProvider timeProvider,
    MqttMetrics metrics,
    ILogger<TopicShardGrain> logger) : Grain, ITopicShardGrain
{
    private long _lastRetainedVersion;
    private bool _serving;

    private int Shard => (int)this.GetPrimaryKeyLong();

    // Matching on a replica that is still catching up could miss subscriptions: wait until it is complete, and, with
    // routes sharded by topic, until it holds this shard's routes. Every subscription acknowledged before this
    // activation started was written with a membership view no newer than the one read here from the membership table:
    // the silos holding the shard in that view have it, and a silo that came to hold the shard later copied it after a
    // barrier on every peer. This silo copies the shard the same way when that view does not name it (the activation
    // was placed by a silo with an older view). From then on this silo keeps the shard's routes until the activation
    // ends (RouteHolders.BeginServing), and every change of them reaches it (Accept), whatever the holders.
    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        await routes.Ready.WaitAsync(cancellationToken);
        if (!holders.Sharded || (uint)Shard >= (uint)holders.Shards)
        {
            return;
        }

        try
        {
            await membership.Refresh();
        }
        catch (Exception ex)
        {
            // The view this silo has then: as new as any this silo sent a change with.
            LogRefreshFailed(logger, ex, Shard);
        }

        var version = membership.CurrentSnapshot.Version;
        await holders.WhenFollowed(version).WaitAsync(cancellationToken);
        _serving = true;
        try
        {
            if (holders.BeginServing(Shard))
            {
                await holders.WhenCaughtUp(Shard).WaitAsync(cancellationToken);
            }
            else
            {
                await sync.CatchUpShardAsync(Shard, version).WaitAsync(cancellationToken);
            }
        }
        catch
        {
            _serving = false;
            holders.EndServing(Shard, routes);
            throw;
        }
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_serving)
        {
            _serving = false;
            holders.EndServing(Shard, routes);
        }

        return Task.CompletedTask;
    }

    public async Task Accept(ClientRoutes changed)
    {
        // What this silo keeps of the client: the exact filters of the shards it holds or serves, this one among them.
        var part = holders.PartFor(changed, holders.KeptShards());
        if (part.Subscriptions.Length == 0 && routes.Get(changed.ClientId) is null)
        {
            // Nothing of the client here to replace or remove.
            return;
        }

        await writer.ApplyAsync(part);
    }

    public async Task<int> Publish(MqttMessage message, CancellationToken cancellationToken = default) => (await PublishBatch([message]))[0];

    public async Task<int[]> PublishBatch(MqttMessage[] messages, CancellationToken cancellationToken = default)
    {
        // A membership change made another silo this shard's first holder: the next activation goes there. This batch
        // is still matched here, on every route of the shard: this silo keeps them while this activation lives, and
        // changes made since reached it (Accept). The activation is ended only after the batch: once deactivating it
        // runs no request, not even Accept, and a session this batch waits for may send one here first (a session
        // activating after its home was lost saves its routes, and a changed shard whose first holder runs no
        // activation of it takes the change at its activation, this one), which would wait for the batch, and the
        // batch for the session, until the response timeout.
        var handOff = holders.Sharded && (uint)Shard < (uint)holders.Shards && !IsFirstHolder();
        if (handOff)
        {
            metrics.ShardHandoffs.Add(1);
        }

        var routed = new int[messages.Length];
        var matches = new List<SessionMatch>();
        Dictionary<string, (GatewayPresence Presence, List<Delivery> Items)>? direct = null;
        Dictionary<string, List<SessionDelivery>>? sessions = null;
        List<Activity>? spans = null;
        for (var m = 0; m < messages.Length; m++)
        {
            var message = messages[m];
            if (message.TraceParent is not null && StartRoute(message) is { } span)
            {
                // The copies carry this shard's span on to the sessions and gateways.
                (spans ??= []).Add(span);
                message = message with { TraceParent = MqttTracing.TraceParentOf(span) };
            }

            if (message.Retain)
            {
                await UpdateRetained(message);
            }

            matches.Clear();
            routes.Match(message, matches);
            routed[m] = matches.Count;
            foreach (var match in matches)
            {
                var retain = message.Retain && match.RetainAsPublished;
                var presence = match.Client.Presence;
                if (match.Qos == 0)
                {
                    if (presence is null || deadGateways.Contains(presence.GatewayId))
                    {
                        // MQTT allows, and mosquitto defaults to, not queueing QoS 0 for offline sessions.
                        metrics.CountDrop(DropReason.OfflineQos0);
                        continue;
                    }

                    direct ??= new(StringComparer.Ordinal);
                    if (!direct.TryGetValue(presence.GatewayId, out var batch))
                    {
                        batch = (presence, []);
                        direct[presence.GatewayId] = batch;
                    }

                    batch.Items.Add(new Delivery(presence.ConnectionId, message, 0, retain, SubscriptionIds: match.SubscriptionIds));
                }
                else
                {
                    sessions ??= new(StringComparer.Ordinal);
                    if (!sessions.TryGetValue(match.Client.ClientId, out var queue))
                    {
                        sessions[match.Client.ClientId] = queue = [];
                    }

                    queue.Add(new SessionDelivery(message, match.Qos, retain, match.SubscriptionIds, match.ShareKey));
                }
            }
        }

        List<Task>? calls = null;
        if (sessions is not null)
        {
            calls = new List<Task>(sessions.Count);
            foreach (var (clientId, queue) in sessions)
            {
                calls.Add(sessionRefs.Get(clientId).Deliver([.. queue]));
            }
        }

        if (direct is not null)
        {
            foreach (var batch in direct.Values)
            {
                outbox.Send(batch.Presence, batch.Items);
            }
        }

        try
        {
            if (calls is not null)
            {
                await Task.WhenAll(calls);
            }
        }
        catch (Exception ex) when (spans is not null)
        {
            foreach (var span in spans)
            {
                span.SetStatus(ActivityStatusCode.Error, ex.GetType().Name);
            }

            throw;
        }
        finally
        {
            if (spans is not null)
            {
                foreach (var span in spans)
                {
                    span.Stop();
                }
            }

            if (handOff)
            {
                DeactivateOnIdle();
            }
        }

        return routed;
    }

    private bool IsFirstHolder()
    {
        var first = holders.HoldersOf(membership.CurrentSnapshot, Shard);
        return first.Length == 0 || first[0].Equals(localSilo.SiloAddress);
    }

    private static Activity? StartRoute(MqttMessage message) =>
        MqttTracing.StartHop(message.TraceParent, MqttTracing.Operations.Route, MqttTracing.OperationTypes.Process, ActivityKind.Internal,
            new MqttMessageTags(message.Topic, message.Qos, message.SenderClientId, message.Payload.Length));

    public async Task Redispatch(string shareKey, string leavingClientId, SessionDelivery[] deliveries)
    {
        var calls = new List<Task>(deliveries.Length);
        foreach (var d in deliveries)
        {
            if (routes.ChooseOtherShareMember(shareKey, leavingClientId, d.Message.Qos) is not { } member || member.Qos == 0)
            {
                metrics.CountDrop(DropReason.NoShareMember);
                continue;
            }

            var session = sessionRefs.Get(member.Client.ClientId);
            calls.Add(session.Deliver([d with { Qos = member.Qos, SubscriptionIds = member.SubscriptionIds }]));
        }

        await Task.WhenAll(calls);
        LogRedispatched(logger, calls.Count, shareKey, leavingClientId);
    }

    private Task UpdateRetained(MqttMessage message)
    {
        // Versions come from a clock that only moves forward, also across re-activations of this shard.
        var version = Math.Max(Math.Max(_lastRetainedVersion, routes.RetainedVersion(message.Topic)) + 1, timeProvider.GetUtcNow().UtcTicks);
        _lastRetainedVersion = version;
        var stored = message.Payload.IsEmpty ? null : message;
        return replicas.ApplyRetained(new RetainedUpdate(message.Topic, version, stored));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Topic shard {Shard}: reading the membership table before serving failed; serving with this silo's view")]
    private static partial void LogRefreshFailed(ILogger logger, Exception ex, int shard);

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Count} messages of {ShareKey} moved from {ClientId} to other members")]
    private static partial void LogRedispatched(ILogger logger, int count, string shareKey, string clientId);
}
