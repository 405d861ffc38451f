using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Ownership;
using Orleans.Runtime.Placement;
using Orleans.Storage;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// The MQTT session of one client id. It owns the subscriptions (the source of truth for the route replicas), the
/// will, the queue of QoS 1/2 messages and their in-flight state, the inbound QoS 2 packet ids and the current
/// owner connection. Sessions that outlive their connection are persisted on every change before the change is
/// acknowledged to anyone, on the storage of the silo that hosts the grain: the session's home, named in its routes
/// so that a later activation is placed there (<see cref="SessionHomePlacement"/>).
/// </summary>
[SessionHomePlacement]
internal sealed partial class ClientSessionGrain(
    [PersistentState(ClientSessionGrain.StateName, MqttGrainStorage.Name)] IPersistentState<SessionState> state,
    ReplicaBroadcaster replicas,
    RouteTable routeTable,
    ISessionOwnershipStore ownership,
    HandoverTargets handoverTargets,
    GatewayOutbox outbox,
    IOptions<MqttBrokerOptions> options,
    ILocalSiloDetails localSilo,
    MqttMetrics metrics,
    ILogger<ClientSessionGrain> logger) : Grain, IClientSessionGrain, IGrainMigrationParticipant
{
    /// <summary>The name of the session's state in <see cref="MqttGrainStorage"/>.</summary>
    internal const string StateName = "session";

    private GatewayPresence? _presence;
    private bool _hasSession;
    private IGrainTimer? _willTimer;
    private bool _migratedIn;

    private SessionState S => state.State;

    private bool Persistent => S.SessionExpiryInterval > 0;

    private string ClientId => this.GetPrimaryKeyString();

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (_migratedIn)
        {
            await AdoptMigratedStateAsync();
        }
        else
        {
            _hasSession = state.RecordExists;
        }

        await routeTable.Ready.WaitAsync(cancellationToken);
        var replicated = routeTable.Get(ClientId);
        var droppedStaleCopy = replicated is not null && replicated.Version >= S.RouteVersion && RestoreFromReplica(replicated);
        if (S.PendingWill is not null)
        {
            ArmWillTimer();
        }

        if (Persistent && _hasSession && (droppedStaleCopy || replicated?.Home != localSilo.Name))
        {
            // Activated away from its home (handed over at a graceful shutdown, or rebuilt after its silo was lost),
            // or over a stale copy: this silo's storage holds the session from now on, and the routes say so before
            // anyone is answered.
            S.RouteVersion = NextVersion(S.RouteVersion);
            await SaveAndReplicateAsync();
        }

        metrics.SessionsInMemory.Add(1);
    }

    /// <summary>
    /// A graceful silo shutdown hands the session over to another silo with everything in it (queue, in-flight
    /// messages, the live connection), because the stored state lives on this silo's disk. The new silo stores it and
    /// becomes its home, with a newer route version. The record here stays: should the hand-over fail, it still holds
    /// the session, and this silo is still its home when it comes back. Once the new home has taken over, the record
    /// is a stale copy, which this silo drops when it starts again (<see cref="StaleSessionCopies"/>) and an
    /// activation here would drop too.
    /// </summary>
    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        metrics.SessionsInMemory.Add(-1);
        if (reason.ReasonCode == DeactivationReasonCode.ShuttingDown && (_hasSession || _presence is not null) && handoverTargets.Next() is { } target)
        {
            RequestContext.Set(IPlacementDirector.PlacementHintKey, target);
            this.MigrateOnIdle();
        }

        return Task.CompletedTask;
    }

    public void OnDehydrate(IDehydrationContext dehydrationContext)
    {
        dehydrationContext.TryAddValue("presence", _presence);
        dehydrationContext.TryAddValue("session", new MigratedSession(_hasSession));
    }

    public void OnRehydrate(IRehydrationContext rehydrationContext)
    {
        _migratedIn = true;
        if (rehydrationContext.TryGetValue("presence", out GatewayPresence? presence))
        {
            _presence = presence;
        }

        if (rehydrationContext.TryGetValue("session", out MigratedSession? session))
        {
            _hasSession = session.HasSession;
        }
    }

    public async Task<ConnectResult> Connect(ConnectRequest request)
    {
        MqttMessage? replacedWill = null;
        if (_presence is { } old)
        {
            // Takeover: the older connection goes first, wherever it is (MQTT 5: DISCONNECT 0x8E before closing).
            // Its will goes out unless it has a delay and this connection continues the session [MQTT-3.1.3-9].
            replacedWill = S.WillDelayInterval > 0 && !request.CleanStart ? null : S.Will;
            S.Will = null;
            _presence = null;
            LogTakeover(logger, ClientId, old.GatewayId, old.ConnectionId);
            try
            {
                await old.Gateway.Disconnect(old.ConnectionId, 0x8E);
            }
            catch (Exception ex)
            {
                LogGatewayCallFailed(logger, ex, ClientId, old.GatewayId);
            }
        }
        else if (_hasSession && IsExpired())
        {
            EndSession();
        }

        if (request.CleanStart)
        {
            // A clean start ends the previous session: a will still waiting for its delay goes out now.
            EndSession();
        }
        else
        {
            // A new connection to the session before the will delay has passed: the will is not sent [MQTT-3.1.3-9].
            CancelPendingWill();
        }

        var sessionPresent = _hasSession && !request.CleanStart;

        _hasSession = true;
        _presence = request.Presence;
        S.ReceiveMaximum = request.ReceiveMaximum == 0 ? ushort.MaxValue : request.ReceiveMaximum;
        S.Will = request.Will;
        S.WillDelayInterval = request.WillDelayInterval;
        S.SessionExpiryInterval = request.SessionExpiryInterval;
        S.DisconnectedAtUtc = null;
        S.RouteVersion = NextVersion(S.RouteVersion);
        KeepWhileConnected();

        var resend = new List<Delivery>(S.Inflight.Count);
        foreach (var m in S.Inflight)
        {
            resend.Add(m.Released
                ? new Delivery(request.Presence.ConnectionId, m.Delivery.Message, 2, false, m.PacketId, Kind: DeliveryKind.PubRel)
                : ToDelivery(m, dup: true));
        }

        Pump(resend);
        await CommitOwnerAsync(request.Presence);
        await SaveAndReplicateAsync();
        return new ConnectResult(sessionPresent, [.. resend], replacedWill is null ? null : Stamp(replacedWill));
    }

    public async Task<MqttMessage?> Disconnect(long connectionId, DisconnectKind kind, uint? sessionExpiryInterval = null)
    {
        if (_presence?.ConnectionId != connectionId)
        {
            return null;
        }

        _presence = null;
        await ReleaseOwnerAsync();
        if (sessionExpiryInterval is { } expiry)
        {
            S.SessionExpiryInterval = expiry;
        }

        var will = kind == DisconnectKind.Normal ? null : S.Will;
        S.Will = null;
        DelayDeactivation(TimeSpan.Zero);
        if (!Persistent)
        {
            RedispatchShared();
            ResetSession();
            _hasSession = false;
            S.RouteVersion = NextVersion(S.RouteVersion);
            await SaveAndReplicateAsync();
            DeactivateOnIdle();
            return will is null ? null : Stamp(will);
        }

        S.DisconnectedAtUtc = DateTime.UtcNow;
        MqttMessage? publishNow = null;
        if (will is not null)
        {
            // The will waits for its delay, or for the end of the session if that comes first [MQTT-3.1.3-9].
            var delay = Math.Min(S.WillDelayInterval, S.SessionExpiryInterval);
            if (delay == 0)
            {
                publishNow = Stamp(will);
            }
            else
            {
                S.PendingWill = will;
                S.WillDueAtUtc = S.DisconnectedAtUtc.Value.AddSeconds(delay);
                ArmWillTimer();
            }
        }

        S.RouteVersion = NextVersion(S.RouteVersion);
        await SaveAndReplicateAsync();
        return publishNow;
    }

    public async Task ExpireIfDue()
    {
        if (_presence is not null || !_hasSession)
        {
            return;
        }

        var changed = false;
        var expired = IsExpired();

        // A will that is due, or that the session's end sends early, goes out once the session's routes are gone
        // everywhere: whoever reacts to it finds the session's subscriptions removed.
        MqttMessage? will = null;
        if (S.PendingWill is not null && (expired || S.WillDueAtUtc <= DateTime.UtcNow))
        {
            will = TakePendingWill();
            changed = true;
        }

        if (expired)
        {
            LogSessionExpired(logger, ClientId, S.SessionExpiryInterval);
            EndSession();
            changed = true;
        }

        if (!changed)
        {
            return;
        }

        S.RouteVersion = NextVersion(S.RouteVersion);
        await SaveAndReplicateAsync();
        if (will is not null)
        {
            PublishWill(will);
        }

        if (!_hasSession)
        {
            DeactivateOnIdle();
        }
    }

    public async Task<SubscribeResult> Subscribe(long connectionId, Subscription[] subscriptions)
    {
        var granted = new byte[subscriptions.Length];
        if (_presence?.ConnectionId != connectionId)
        {
            Array.Fill(granted, (byte)0x80);
            return new SubscribeResult(granted, []);
        }

        var isNew = new bool[subscriptions.Length];
        for (var i = 0; i < subscriptions.Length; i++)
        {
            var sub = subscriptions[i];
            isNew[i] = !S.Subscriptions.ContainsKey(sub.Filter);
            S.Subscriptions[sub.Filter] = sub;
            granted[i] = sub.Qos;
        }

        S.RouteVersion = NextVersion(S.RouteVersion);

        // SUBACK is sent when this returns: the subscription must be stored and routable on every live silo by then.
        await SaveAndReplicateAsync();

        var deliveries = new List<Delivery>();
        var retained = new List<MqttMessage>();
        var queued = false;
        for (var i = 0; i < subscriptions.Length; i++)
        {
            var sub = subscriptions[i];
            // Retained messages are not sent for a shared subscription (MQTT 5 section 4.8.2); retain handling otherwise.
            if (sub.RetainHandling == 2 || (sub.RetainHandling == 1 && !isNew[i]) || Topics.SharedSubscription.IsShared(sub.Filter))
            {
                continue;
            }

            retained.Clear();
            routeTable.MatchRetained(sub.Filter, retained);
            var ids = sub.SubscriptionId == 0 ? null : new[] { sub.SubscriptionId };
            foreach (var message in retained)
            {
                var qos = Math.Min(message.Qos, sub.Qos);
                if (qos == 0)
                {
                    deliveries.Add(new Delivery(connectionId, message, 0, true, SubscriptionIds: ids));
                }
                else
                {
                    queued |= Enqueue(new SessionDelivery(message, (byte)qos, true, ids));
                }
            }
        }

        if (queued)
        {
            Pump(deliveries);
            await SaveAsync();
        }

        return new SubscribeResult(granted, [.. deliveries]);
    }

    public async Task<bool[]> Unsubscribe(long connectionId, string[] filters)
    {
        var existed = new bool[filters.Length];
        if (_presence?.ConnectionId != connectionId)
        {
            return existed;
        }

        for (var i = 0; i < filters.Length; i++)
        {
            existed[i] = S.Subscriptions.Remove(filters[i]);
        }

        S.RouteVersion = NextVersion(S.RouteVersion);
        await SaveAndReplicateAsync();
        return existed;
    }

    public async Task Deliver(SessionDelivery[] deliveries)
    {
        if (!_hasSession)
        {
            // A route that outlived its session (e.g. a replica not yet updated): nothing to deliver to.
            metrics.MessagesDropped.Add(deliveries.Length, new KeyValuePair<string, object?>("reason", "no_session"));
            DeactivateOnIdle();
            return;
        }

        var changed = false;
        foreach (var d in deliveries)
        {
            changed |= Enqueue(d);
        }

        if (!changed)
        {
            return;
        }

        var outgoing = new List<Delivery>();
        Pump(outgoing);

        // Durable before the publisher is acknowledged.
        await SaveAsync();
        await PushAsync(outgoing);
    }

    public Task Acknowledge(long connectionId, ushort packetId, OutboundAck ack) =>
        AcknowledgeBatch(connectionId, [new OutboundAcknowledgement(packetId, ack)]);

    public async Task AcknowledgeBatch(long connectionId, OutboundAcknowledgement[] acks)
    {
        if (_presence?.ConnectionId != connectionId)
        {
            return;
        }

        var changed = false;
        foreach (var (packetId, ack) in acks)
        {
            changed |= ApplyAcknowledgement(packetId, ack);
        }

        if (!changed)
        {
            return;
        }

        var outgoing = new List<Delivery>();
        Pump(outgoing);
        await SaveAsync();
        await PushAsync(outgoing);
    }

    // Acknowledgements mostly arrive in send order, so the match is usually the first entry (a loop: no closure per ack).
    private int IndexOfInflight(ushort packetId)
    {
        var inflight = S.Inflight;
        for (var i = 0; i < inflight.Count; i++)
        {
            if (inflight[i].PacketId == packetId)
            {
                return i;
            }
        }

        return -1;
    }

    private bool ApplyAcknowledgement(ushort packetId, OutboundAck ack)
    {
        var index = IndexOfInflight(packetId);
        if (index < 0)
        {
            return false;
        }

        var inflight = S.Inflight[index];
        switch (ack)
        {
            case OutboundAck.PubRec when inflight.Delivery.Qos == 2:
                inflight.Released = true;
                return true;
            case OutboundAck.PubAck when inflight.Delivery.Qos == 1:
            case OutboundAck.PubComp when inflight.Delivery.Qos == 2:
                S.Inflight.RemoveAt(index);
                return true;
            default:
                return false;
        }
    }

    public Task<bool> IsInboundQos2Pending(ushort packetId) => Task.FromResult(S.InboundQos2.Contains(packetId));

    public Task AddInboundQos2(long connectionId, ushort packetId)
    {
        if (S.InboundQos2.Contains(packetId))
        {
            return Task.CompletedTask;
        }

        S.InboundQos2.Add(packetId);
        return SaveAsync();
    }

    public Task ReleaseInboundQos2(long connectionId, ushort packetId) =>
        S.InboundQos2.Remove(packetId) ? SaveAsync() : Task.CompletedTask;

    private bool Enqueue(SessionDelivery delivery)
    {
        if (S.Queue.Count + S.Inflight.Count >= options.Value.MaxQueuedMessages)
        {
            // Policy at the limit: drop the newest message for this session only; counted, logged, kept per session.
            S.DroppedMessages++;
            metrics.MessagesDropped.Add(1, new KeyValuePair<string, object?>("reason", "queue_full"));
            if (S.DroppedMessages == 1 || S.DroppedMessages % 1000 == 0)
            {
                LogQueueFull(logger, ClientId, options.Value.MaxQueuedMessages, S.DroppedMessages);
            }

            return false;
        }

        S.Queue.Add(delivery);
        return true;
    }

    private void Pump(List<Delivery> outgoing)
    {
        if (_presence is null || S.Queue.Count == 0)
        {
            return;
        }

        var window = Math.Min(options.Value.MaxInflightMessages, (int)S.ReceiveMaximum);
        var now = DateTime.UtcNow;
        var taken = 0;
        while (taken < S.Queue.Count && S.Inflight.Count < window)
        {
            var next = S.Queue[taken++];
            if (next.Message.IsExpired(now))
            {
                // Expired before onward delivery started: deleted, not sent [MQTT-3.3.2-5].
                metrics.MessagesDropped.Add(1, new KeyValuePair<string, object?>("reason", "expired"));
                continue;
            }

            var inflight = new InflightMessage { PacketId = NextPacketId(), Delivery = next };
            S.Inflight.Add(inflight);
            outgoing.Add(ToDelivery(inflight, dup: false));
        }

        S.Queue.RemoveRange(0, taken);
    }

    private Delivery ToDelivery(InflightMessage m, bool dup) =>
        new(_presence!.ConnectionId, m.Delivery.Message, m.Delivery.Qos, m.Delivery.Retain, m.PacketId, dup, m.Delivery.SubscriptionIds);

    // Handed to the silo's outbox, not awaited: the messages are in flight in this session's state already, and a
    // push that fails is made good when the client resumes (they are re-sent with DUP).
    private Task PushAsync(List<Delivery> outgoing)
    {
        if (outgoing.Count > 0 && _presence is { } presence)
        {
            outbox.Send(presence, outgoing);
        }

        return Task.CompletedTask;
    }

    private ushort NextPacketId()
    {
        for (var attempt = 0; attempt < ushort.MaxValue; attempt++)
        {
            var id = S.LastPacketId == ushort.MaxValue ? (ushort)1 : (ushort)(S.LastPacketId + 1);
            S.LastPacketId = id;
            if (!S.Inflight.Exists(m => m.PacketId == id))
            {
                return id;
            }
        }

        throw new InvalidOperationException("No free packet identifier.");
    }

    private bool IsExpired() => S.IsExpired(DateTime.UtcNow);

    /// <summary>The session ends: a will still waiting for its delay is published, then everything is forgotten.</summary>
    private void EndSession()
    {
        if (S.PendingWill is not null)
        {
            PublishPendingWill();
        }

        RedispatchShared();
        ResetSession();
    }

    /// <summary>
    /// Messages that came through a shared subscription and were not yet (fully) delivered go to another member of
    /// their group when this session ends. Not awaited, for the same reason as the will.
    /// </summary>
    private void RedispatchShared()
    {
        Dictionary<(string ShareKey, int Shard), List<SessionDelivery>>? groups = null;
        var shards = options.Value.TopicShards;
        foreach (var d in S.Queue)
        {
            Collect(d);
        }

        foreach (var m in S.Inflight)
        {
            // A QoS 2 message whose delivery has started never goes to another client [MQTT-4.8.2-5]; a QoS 1 one
            // does, as section 4.8.2 recommends.
            if (m.Delivery.Qos == 1)
            {
                Collect(m.Delivery);
            }
        }

        if (groups is null)
        {
            return;
        }

        foreach (var ((shareKey, shard), deliveries) in groups)
        {
            GrainFactory.GetGrain<ITopicShardGrain>(shard).Redispatch(shareKey, ClientId, [.. deliveries]).ContinueWith(
                t => LogRedispatchFailed(logger, t.Exception!, ClientId, shareKey),
                CancellationToken.None,
                TaskContinuationOptions.OnlyOnFaulted,
                TaskScheduler.Current);
        }

        void Collect(SessionDelivery d)
        {
            if (d.ShareKey is null)
            {
                return;
            }

            groups ??= [];
            var key = (d.ShareKey, Topics.MqttTopic.ShardOf(d.Message.Topic, shards));
            if (!groups.TryGetValue(key, out var list))
            {
                groups[key] = list = [];
            }

            list.Add(d);
        }
    }

    private void CancelPendingWill()
    {
        S.PendingWill = null;
        S.WillDueAtUtc = null;
        _willTimer?.Dispose();
        _willTimer = null;
    }

    private void ArmWillTimer()
    {
        _willTimer?.Dispose();
        var due = S.WillDueAtUtc!.Value - DateTime.UtcNow;
        _willTimer = this.RegisterGrainTimer(
            ExpireIfDue,
            new GrainTimerCreationOptions { DueTime = due < TimeSpan.Zero ? TimeSpan.Zero : due, Period = Timeout.InfiniteTimeSpan, KeepAlive = true });
    }

    private void PublishPendingWill() => PublishWill(TakePendingWill());

    private MqttMessage TakePendingWill()
    {
        var will = Stamp(S.PendingWill!);
        CancelPendingWill();
        return will;
    }

    private void PublishWill(MqttMessage will)
    {
        // Not awaited: the shard may hand the will back to this very session (a client subscribed to its own will
        // topic), which could not run while this call waits.
        var shard = GrainFactory.GetGrain<ITopicShardGrain>(Topics.MqttTopic.ShardOf(will.Topic, options.Value.TopicShards));
        shard.Publish(will).ContinueWith(
            t => LogWillPublishFailed(logger, t.Exception!, ClientId, will.Topic),
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted,
            TaskScheduler.Current);
    }

    /// <summary>A will's Message Expiry Interval counts from when it is published [MQTT-3.1.3-14].</summary>
    private static MqttMessage Stamp(MqttMessage will) =>
        will.Properties is { MessageExpiryInterval: > 0 } p ? will with { ExpiresAtUtc = DateTime.UtcNow.AddSeconds(p.MessageExpiryInterval) } : will;

    private DateTime? SweepAt()
    {
        if (_presence is not null || !Persistent || !_hasSession)
        {
            return null;
        }

        DateTime? expires = S.SessionExpiryInterval == uint.MaxValue || S.DisconnectedAtUtc is null
            ? null
            : S.DisconnectedAtUtc.Value.AddSeconds(S.SessionExpiryInterval);
        if (S.WillDueAtUtc is { } willDue && (expires is null || willDue < expires))
        {
            return willDue;
        }

        return expires;
    }

    private void ResetSession()
    {
        S.Subscriptions.Clear();
        S.Queue.Clear();
        S.Inflight.Clear();
        S.InboundQos2.Clear();
        S.Will = null;
        S.DisconnectedAtUtc = null;
        S.DroppedMessages = 0;
        CancelPendingWill();
        _hasSession = false;
    }

    private ClientRoutes CurrentRoutes() =>
        new(ClientId, S.RouteVersion, [.. S.Subscriptions.Values], Persistent && _hasSession, _presence, SweepAt(), S.SessionExpiryInterval,
            Persistent && _hasSession ? localSilo.Name : null);

    /// <summary>
    /// The state arrived with the migration, but this silo's storage has its own record (or none): take that record's
    /// version and store the migrated state over it, so this silo's disk holds the session from now on.
    /// </summary>
    private async Task AdoptMigratedStateAsync()
    {
        var migrated = state.State;
        for (var attempt = 0; ; attempt++)
        {
            await state.ReadStateAsync();
            state.State = migrated;
            try
            {
                if (Persistent && _hasSession)
                {
                    await state.WriteStateAsync();
                }

                break;
            }
            catch (InconsistentStateException) when (attempt == 0)
            {
                // The record changed between the read and the write: this silo, just started, dropped its stale copy.
            }
        }

        if (_presence is not null)
        {
            KeepWhileConnected();
        }

        LogMigratedIn(logger, ClientId, S.Queue.Count, S.Inflight.Count, _presence is not null);
    }

    /// <summary>
    /// The replica is written before anything is acknowledged, so it knows at least what this grain last made
    /// routable. A newer or equal copy there means this activation lost state (its silo crashed, or the session was
    /// clean and kept only in memory): take the subscriptions and the live connection from it. The queue, in-flight
    /// messages and the will of a crashed silo's session are not in the replica and are lost. A record this silo's
    /// storage holds but that is older than the routes is a stale copy: another silo has been the session's home
    /// since (this one crashed, or was away, while the session went on elsewhere). What it queued may have been
    /// delivered since, or belong to a session that ended in between, so it is dropped with the rest.
    /// </summary>
    /// <returns>Whether a stale copy was dropped.</returns>
    private bool RestoreFromReplica(ClientRoutes replicated)
    {
        var lostState = replicated.Version > S.RouteVersion;
        var stale = lostState && S.RouteVersion > 0;
        if (stale)
        {
            LogStaleCopyDropped(logger, ClientId, S.RouteVersion, replicated.Version, replicated.Home, S.Queue.Count, S.Inflight.Count);
            metrics.SessionsStaleCopiesDropped.Add(1, new KeyValuePair<string, object?>("where", "activation"));
            S.Queue.Clear();
            S.Inflight.Clear();
            S.InboundQos2.Clear();
            S.Will = null;
            S.WillDelayInterval = 0;
            S.PendingWill = null;
            S.WillDueAtUtc = null;
        }

        S.RouteVersion = replicated.Version;
        _presence = replicated.Presence;
        if (lostState)
        {
            S.Subscriptions.Clear();
            foreach (var subscription in replicated.Subscriptions)
            {
                S.Subscriptions[subscription.Filter] = subscription;
            }

            S.SessionExpiryInterval = replicated.SessionExpiryInterval;
            _hasSession = true;
            if (_presence is null)
            {
                S.DisconnectedAtUtc ??= DateTime.UtcNow;
            }

            LogRestoredFromReplica(logger, ClientId, replicated.Subscriptions.Length, _presence is not null);
        }

        if (_presence is not null)
        {
            KeepWhileConnected();
        }

        return stale;
    }

    /// <summary>
    /// Commits this connection as the client id's owner (compare-and-swap on the record's revision) before CONNACK.
    /// A conflict means the record changed behind this activation's back (a previous activation wrote it, or the
    /// gateway's lease expired): the connection it names is told to go (0x8E) and the commit is retried on what was found.
    /// </summary>
    private async Task CommitOwnerAsync(GatewayPresence presence)
    {
        for (var attempt = 0; ; attempt++)
        {
            var owner = new SessionOwner(presence.GatewayId, presence.ConnectionId, S.OwnerEpoch + 1, presence.LeaseId);
            var commit = await ownership.CommitAsync(ClientId, owner, S.OwnerRevision);
            if (commit.Committed)
            {
                S.OwnerRevision = commit.Revision;
                S.OwnerEpoch = owner.Epoch;
                return;
            }

            S.OwnerRevision = commit.Revision;
            S.OwnerEpoch = Math.Max(S.OwnerEpoch, commit.Current?.Epoch ?? 0);
            if (commit.Current is { } other && (other.GatewayId != presence.GatewayId || other.ConnectionId != presence.ConnectionId))
            {
                await EvictAsync(other);
            }

            if (attempt == 5)
            {
                throw new InvalidOperationException($"The ownership record of client {ClientId} keeps changing; connect refused.");
            }
        }
    }

    private async Task EvictAsync(SessionOwner other)
    {
        LogForeignOwner(logger, ClientId, other.GatewayId, other.ConnectionId, other.Epoch);
        if (routeTable.Get(ClientId)?.Presence is { } p && p.GatewayId == other.GatewayId && p.ConnectionId == other.ConnectionId)
        {
            try
            {
                await p.Gateway.Disconnect(p.ConnectionId, 0x8E);
            }
            catch (Exception ex)
            {
                LogGatewayCallFailed(logger, ex, ClientId, other.GatewayId);
            }
        }
    }

    private async Task ReleaseOwnerAsync()
    {
        if (S.OwnerRevision == 0)
        {
            return;
        }

        try
        {
            var release = await ownership.ReleaseAsync(ClientId, S.OwnerRevision);
            S.OwnerRevision = release.Committed ? 0 : release.Revision;
        }
        catch (Exception ex)
        {
            // The record hangs on the gateway's lease; at worst it names a connection that is gone.
            LogReleaseFailed(logger, ex, ClientId);
        }
    }

    /// <summary>
    /// Stores the session and sends its routes to every silo's replica, both at once: the answer that follows (CONNACK,
    /// SUBACK, UNSUBACK) waits for both, and neither needs the other (the routes carry their own version), so the
    /// two commits overlap instead of adding up.
    /// </summary>
    private Task SaveAndReplicateAsync()
    {
        var routes = CurrentRoutes();
        var save = SaveAsync();
        var replicate = replicas.Apply(routes);
        return save.IsCompletedSuccessfully ? replicate : Task.WhenAll(save, replicate);
    }

    private Task SaveAsync()
    {
        if (Persistent && _hasSession)
        {
            return state.WriteStateAsync();
        }

        return state.RecordExists ? ClearKeepingMemoryAsync() : Task.CompletedTask;
    }

    // The session went from persistent to ending with its connection: forget the stored copy, keep the live one.
    private async Task ClearKeepingMemoryAsync()
    {
        var live = state.State;
        await state.ClearStateAsync();
        state.State = live;
    }

    /// <summary>
    /// A clean session lives only in memory: it stays while its client is connected. A persistent one may leave memory
    /// when idle (<c>Mqtt:SessionIdleTimeout</c>), connected or not: everything it knows is stored on its home silo,
    /// and its routes name the live connection, so the next message, acknowledgement or subscribe finds it whole.
    /// </summary>
    private void KeepWhileConnected()
    {
        // Zero lifts the hold of a clean session this connection took over.
        DelayDeactivation(Persistent && _hasSession ? TimeSpan.Zero : TimeSpan.MaxValue);
    }

    // A clock that only moves forward, also across activations, so replicas can order versions without tombstones.
    private static long NextVersion(long current) => Math.Max(current + 1, DateTime.UtcNow.Ticks);

    [LoggerMessage(Level = LogLevel.Information, Message = "Client {ClientId} taken over from gateway {GatewayId} connection {ConnectionId}")]
    private static partial void LogTakeover(ILogger logger, string clientId, string gatewayId, long connectionId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Call to gateway {GatewayId} for client {ClientId} failed")]
    private static partial void LogGatewayCallFailed(ILogger logger, Exception ex, string clientId, string gatewayId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Session of client {ClientId} handed over to this silo ({Queued} queued, {Inflight} in flight, connected: {Connected})")]
    private static partial void LogMigratedIn(ILogger logger, string clientId, int queued, int inflight, bool connected);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session of client {ClientId} rebuilt from the route replica ({Subscriptions} subscriptions, connected: {Connected}); its stored state was lost")]
    private static partial void LogRestoredFromReplica(ILogger logger, string clientId, int subscriptions, bool connected);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stored copy of client {ClientId}'s session on this silo is stale (route version {StoredVersion}, the routes have {ReplicatedVersion} with home {Home}): its {Queued} queued and {Inflight} in-flight messages and its will are dropped")]
    private static partial void LogStaleCopyDropped(ILogger logger, string clientId, long storedVersion, long replicatedVersion, string? home, int queued, int inflight);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ownership record of client {ClientId} names gateway {GatewayId} connection {ConnectionId} (epoch {Epoch}); taking over")]
    private static partial void LogForeignOwner(ILogger logger, string clientId, string gatewayId, long connectionId, long epoch);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Releasing the ownership record of client {ClientId} failed")]
    private static partial void LogReleaseFailed(ILogger logger, Exception ex, string clientId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Session of client {ClientId} expired ({Interval} s after its connection ended)")]
    private static partial void LogSessionExpired(ILogger logger, string clientId, uint interval);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Moving the shared-subscription messages of client {ClientId} ({ShareKey}) to other members failed")]
    private static partial void LogRedispatchFailed(ILogger logger, Exception ex, string clientId, string shareKey);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publishing the will of client {ClientId} to {Topic} failed")]
    private static partial void LogWillPublishFailed(ILogger logger, Exception ex, string clientId, string topic);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Queue of client {ClientId} is full ({Limit} messages): newest message dropped, {Dropped} dropped so far")]
    private static partial void LogQueueFull(ILogger logger, string clientId, int limit, long dropped);
}
