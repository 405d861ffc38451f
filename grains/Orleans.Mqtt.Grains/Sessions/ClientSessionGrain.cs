using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// The MQTT session of one client id. It owns the subscriptions (the source of truth for the route replicas), the
/// will, the queue of QoS 1/2 messages and their in-flight state, the inbound QoS 2 packet ids and the current
/// owner connection. Sessions that outlive their connection are persisted on every change before the change is
/// acknowledged to anyone, on the storage of the silo that hosts the grain (the session's home, named in its routes
/// so that a later activation is placed there, <see cref="SessionHomePlacement"/>) and on <c>Mqtt:SessionReplicas - 1</c>
/// further silos (<see cref="SessionReplicator"/>), from which it is recovered when its home is lost.
/// </summary>
[SessionHomePlacement]
internal sealed partial class ClientSessionGrain(
    [PersistentState(ClientSessionGrain.StateName, MqttGrainStorage.Name)] IPersistentState<SessionState> state,
    ReplicaBroadcaster replicas,
    EntryLocator entryLocator,
    RouteTable routeTable,
    ISessionOwnershipStore ownership,
    HandoverTargets handoverTargets,
    SessionReplicator sessionReplicator,
    GatewayOutbox outbox,
    IOptions<MqttBrokerOptions> options,
    ILocalSiloDetails localSilo,
    TimeProvider timeProvider,
    MqttMetrics metrics,
    ILogger<ClientSessionGrain> logger) : Grain, IClientSessionGrain, IGrainMigrationParticipant
{
    /// <summary>The name of the session's state in <see cref="MqttGrainStorage"/>.</summary>
    internal const string StateName = "session";

    private GatewayPresence? _presence;
    private bool _hasSession;
    private IGrainTimer? _willTimer;
    private bool _migratedIn;
    private string? _clientId;

    // The routes this activation last sent, all of it acknowledged (or, right after activation, the version its own
    // silo holds and its state was saved with, or an empty version when no silo holds anything of the client): with
    // routes sharded by topic the next change goes to the silos that hold these or it, and a change of only the
    // presence to fewer (ReplicaBroadcaster.Apply). Null when unknown: the next change goes to every silo.
    private ClientRoutes? _replicated;

    private SessionState S => state.State;

    private bool Persistent => S.SessionExpiryInterval > 0;

    // Decoded from the grain id once: GetPrimaryKeyString makes a new string on every call, and a connect asks for it
    // about ten times (each save, the routes, the ownership commit).
    private string ClientId => _clientId ??= this.GetPrimaryKeyString();

    private DateTime UtcNow => timeProvider.GetUtcNow().UtcDateTime;

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

        // With routes sharded by topic this silo may hold no entry for the client (the session was placed here by a
        // silo that is not its home nor the first of its ranking): its entry holders are asked.
        var replicated = await entryLocator.ReadAsync(ClientId);
        if (replicated is not null && (replicated.SubscriptionTotal is not null || replicas.Sharded) && replicated.Version > S.RouteVersion)
        {
            // Routes sharded by topic: this silo holds only a part of them, and the session is rebuilt from them; and a
            // change of only the presence reached only the silos that use it, so this silo's version may be older
            // than the newest (whose state base recovery checks copies against).
            replicated = await replicas.ReadWholeAsync(ClientId) ?? replicated;
        }

        var recovered = false;
        if (!_migratedIn && replicated is { Persistent: true } && replicated.Version > S.RouteVersion)
        {
            // The routes know a newer session than this silo's storage (none, or an older copy): its home was lost, or
            // this silo was away while the session went on. The newest copy any silo holds is the session.
            (replicated, recovered) = await RecoverAsync(replicated!);
        }

        var droppedStaleCopy = replicated is not null && replicated.Version >= S.RouteVersion && RestoreFromReplica(replicated);

        if (S.PendingWill is not null)
        {
            ArmWillTimer();
        }

        if (Persistent && _hasSession && (recovered || droppedStaleCopy || replicated?.Home != localSilo.Name))
        {
            // Activated away from its home (handed over at a graceful shutdown, or rebuilt after its silo was lost),
            // or over a stale copy: this silo's storage holds the session from now on, and the routes say so before
            // anyone is answered.
            S.RouteVersion = NextVersion(S.RouteVersion);
            await SaveAndReplicateAsync();
        }
        else if (replicated is not null && replicated.Version == S.RouteVersion && Persistent && _hasSession && replicated.Home == localSilo.Name)
        {
            // The version this silo holds is the one the stored state was saved with: what every silo holds but for
            // the presence (a later presence-only change went to this silo too, as the session's home).
            _replicated = CurrentRoutes();
        }
        else if (replicas.Sharded && replicated is null && !_hasSession && S.RouteVersion == 0)
        {
            // No silo holds anything of this client: its first change goes to the silos that will hold it, not to all.
            _replicated = new ClientRoutes(ClientId, 0, [], false, null);
        }

        if ((recovered || _migratedIn) && _presence is { } connected && S.Inflight.Count > 0)
        {
            // The home that died had pushed these to the client, or died before it could: nobody knows which, and MQTT
            // sends them again only on a new connection [MQTT-4.4.0-1]. Left as they are, a lost push holds the client's
            // window for as long as the connection lasts, with its queue filling behind it, and the messages after it
            // overtake it. A graceful hand-over is no different: a push still unanswered when the old silo stopped is
            // lost with its outbox (docs/benchmarks.md, "A rolling upgrade between two real builds").
            _ = CloseToResumeAsync(connected);
        }

        metrics.SessionsInMemory.Add(1);
    }

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

    private ClientRoutes CurrentRoutes() =>
        new(ClientId, S.RouteVersion, SubscriptionArray(), Persistent && _hasSession, _presence, SweepAt(), S.SessionExpiryInterval,
            Persistent && _hasSession ? localSilo.Name : null, localSilo.Name, S.UserName, S.StateVersion);

    // Through the dictionary's own enumerator: its Values would stay cached in the dictionary, one more object per
    // session in memory.
    private Subscription[] SubscriptionArray()
    {
        if (S.Subscriptions.Count == 0)
        {
            return [];
        }

        var subscriptions = new Subscription[S.Subscriptions.Count];
        var i = 0;
        foreach (var (_, subscription) in S.Subscriptions)
        {
            subscriptions[i++] = subscription;
        }

        return subscriptions;
    }

    /// <summary>
    /// Stores the session and sends its routes to every silo's replica, both at once: the answer that follows (CONNACK,
    /// SUBACK, UNSUBACK) waits for both, and neither needs the other (the routes carry their own version), so the
    /// two commits overlap instead of adding up. The routes for the silo that gets the session's copy ride in the copy's
    /// call (<see cref="RoutesWithCopy"/>): they are offered before the copy leaves.
    /// </summary>
    private Task SaveAndReplicateAsync()
    {
        var routes = CurrentRoutes();
        var withCopy = Persistent && _hasSession ? sessionReplicator.PlanCopy(ClientId) : null;
        var replicate = ReplicateAsync(routes, withCopy);
        var save = SaveAsync(withCopy);
        return save.IsCompletedSuccessfully ? replicate : Task.WhenAll(save, replicate);
    }

    private async Task ReplicateAsync(ClientRoutes routes, RoutesWithCopy? withCopy)
    {
        var previous = _replicated;
        _replicated = null;
        await replicas.Apply(routes, previous, withCopy);
        _replicated = routes;
    }

    /// <summary>
    /// Stores a persistent session on this silo and on its replica silos, both at once, under a new state version;
    /// returns when every copy is durable. A session that stopped being persistent is deleted from both.
    /// </summary>
    private Task SaveAsync(RoutesWithCopy? withCopy = null)
    {
        if (Persistent && _hasSession)
        {
            S.StateVersion = NextVersion(S.StateVersion);
            var local = state.WriteStateAsync();
            var copies = sessionReplicator.WriteAsync(ClientId, S.StateVersion, S, withCopy);
            return copies.IsCompletedSuccessfully ? local : Task.WhenAll(local, copies);
        }

        withCopy?.Close();
        return state.RecordExists ? ClearKeepingMemoryAsync() : Task.CompletedTask;
    }

    // The session went from persistent to ending with its connection: forget the stored copies, keep the live one.
    private async Task ClearKeepingMemoryAsync()
    {
        var live = state.State;
        live.StateVersion = NextVersion(live.StateVersion);
        await Task.WhenAll(state.ClearStateAsync(), sessionReplicator.WriteAsync(ClientId, live.StateVersion, null));
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
    private long NextVersion(long current) => Math.Max(current + 1, UtcNow.Ticks);
}
