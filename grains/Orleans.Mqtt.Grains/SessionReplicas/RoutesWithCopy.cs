namespace Orleans.Mqtt.Grains;

/// <summary>
/// One save of a persistent session whose routes and state copy both go to the session's first copy holder (with routes
/// sharded by topic that silo is one of the client's entry holders; without sharding every silo is): the routes ride in
/// the copy's call (<see cref="ISessionCopyGrainV2.StoreWithRoutesAndAsk"/>) instead of a replica call of their own,
/// one message and its answer fewer on every CONNECT, SUBSCRIBE and DISCONNECT of a persistent session. The route write
/// (<see cref="ReplicaBroadcaster.Apply"/>) offers the holder's part first; the copy write
/// (<see cref="SessionReplicator.WriteAsync"/>) then takes it along on its first attempt to that silo. The part
/// comes with the changed shards that silo is first holder of, asked as
/// <see cref="IRouteReplicaGrain.ApplyAndAskServing"/> asks them, so a riding part's shards skip their grains as well
/// when an activation runs there (a holder of the previous release takes the part with
/// <see cref="ISessionCopyGrain.StoreWithRoutes"/> and answers none). Whatever does not ride (offered too late, a
/// holder that changed in between, a copy call that failed) is answered null, and the route write sends that part
/// itself, with its own retries and the same question: riding never weakens either write's guarantee.
/// </summary>
internal sealed class RoutesWithCopy(SiloAddress holder, List<SiloAddress> ranked)
{
    private readonly TaskCompletionSource<int[]?> _carried = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _lock = new();
    private ClientRoutes? _routes;
    private int[] _ask = [];
    private bool _closed;
    private bool _taken;

    /// <summary>The silo the copy goes to first and the routes may ride to.</summary>
    public SiloAddress Holder => holder;

    /// <summary>The session's copy holders in rank, as the copy write ranked them when this was made.</summary>
    public List<SiloAddress> Ranked => ranked;

    /// <summary>
    /// Offers the routes part for <paramref name="silo"/>, with the shards to ask it about (<paramref name="ask"/>, null:
    /// none): null when they cannot ride (another silo, or the copy already left); otherwise a task whose result, once
    /// the holder has them durably, is which of those shards an activation on the holder serves (empty when none or
    /// none asked), or null when the route write must send them.
    /// </summary>
    public Task<int[]?>? Offer(SiloAddress silo, ClientRoutes part, int[]? ask)
    {
        lock (_lock)
        {
            if (_closed || _routes is not null || !silo.Equals(holder))
            {
                return null;
            }

            _routes = part;
            _ask = ask ?? [];
            return _carried.Task;
        }
    }

    /// <summary>
    /// The routes to send with the copy to <paramref name="silo"/> on its first attempt there, with the shards to ask
    /// about, if any; nothing is offered after the holder's.
    /// </summary>
    public (ClientRoutes Routes, int[] Ask)? Take(SiloAddress silo)
    {
        lock (_lock)
        {
            if (_closed || !silo.Equals(holder))
            {
                return null;
            }

            _closed = true;
            _taken = _routes is not null;
            return _routes is null ? null : (_routes, _ask);
        }
    }

    /// <summary>
    /// The copy call that took the routes ended: they are durable on the holder, whose activations serve
    /// <paramref name="served"/> of the shards asked about, or (null) they must be sent directly.
    /// </summary>
    public void Carried(int[]? served) => _carried.TrySetResult(served);

    /// <summary>The copy write sent its first calls (or none): routes offered but not taken are sent by the route write.</summary>
    public void Close()
    {
        bool left;
        lock (_lock)
        {
            _closed = true;
            left = _routes is not null && !_taken;
        }

        if (left)
        {
            _carried.TrySetResult(null);
        }
    }
}
