using Microsoft.Extensions.Options;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Which silos hold which routes (<c>Mqtt:Routes:Sharding</c>). Off: every silo holds every client's routes. Topic: a
/// filter without wildcards (shared or not) is held by the route holders of its topic shard, the shard every publish
/// to that topic goes to: the first <c>Mqtt:Routes:Copies</c> active silos ranked by rendezvous hashing of the shard
/// and the silo name (<see cref="SessionHolders.Score"/>), so every silo computes the same holders from the same
/// membership view and a joining or leaving silo moves about one shard in N. The shard grain runs on the first holder
/// (<see cref="TopicShardPlacementDirector"/>). A client's entry (home, expiry, presence, state base) is held by its
/// entry holders (<see cref="IsEntryHolder"/>: its home and the next silos of its ranking by client id) and, as a part
/// with those filters, by the holders of its exact filters' shards; a client with a wildcard filter by every silo
/// (<see cref="Holds"/>). A silo that holds none of it asks the first silo of the client's ranking
/// (<see cref="EntryLocator"/>).
/// </summary>
internal sealed class RouteHolders
{
    private readonly int _shards;
    private readonly int _copies;
    private readonly int _entryCopies;
    private readonly Dictionary<int, TaskCompletionSource> _catchingUp = [];

    // Shards whose shard grain has an activation on this silo (how many, for the moment one ends as the next starts),
    // and the shards this silo held when the table was last pruned (null: never pruned, all kept).
    private readonly Dictionary<int, int> _served = [];
    private bool[]? _kept;
    private TaskCompletionSource _servedChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource? _entriesCatchingUp;
    private TaskCompletionSource _followedChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private MembershipVersion _followed = MembershipVersion.MinValue;
    private View? _view;
    private View? _previousView;

    public RouteHolders(IOptions<MqttBrokerOptions> options)
    {
        _shards = options.Value.TopicShards;
        _copies = options.Value.Routes.Copies;

        // At least as many as the session's copies besides its home, so that every silo holding a copy of a session
        // (SessionHolders.CopyHolders) also holds its entry, and at least one, so that the home's loss leaves one.
        _entryCopies = Math.Max(1, Math.Max(_copies, options.Value.SessionReplicas) - 1);
        Sharded = options.Value.Routes.Sharding == RouteSharding.Topic;
    }

    /// <summary>Whether exact filters are held by their shard's holders only.</summary>
    public bool Sharded { get; }

    /// <summary>The number of topic shards.</summary>
    public int Shards => _shards;

    /// <summary>The shard of a filter without wildcards (of its topic filter, for a shared one); -1 for a wildcard filter.</summary>
    public int ShardOf(Subscription subscription) => ShardOf(subscription.Filter, _shards);

    /// <inheritdoc cref="ShardOf(Subscription)"/>
    public static int ShardOf(string filter, int shards)
    {
        var topicFilter = SharedSubscription.TryParse(filter, out _, out var inner) ? inner : filter;
        return MqttTopic.HasWildcard(topicFilter) ? -1 : MqttTopic.ShardOf(topicFilter, shards);
    }

    /// <summary>The holders of <paramref name="shard"/> in <paramref name="snapshot"/>, first holder first.</summary>
    public SiloAddress[] HoldersOf(ClusterMembershipSnapshot snapshot, int shard) => ViewOf(snapshot).Holders[shard];

    /// <summary>
    /// The shards <paramref name="silo"/> holds in <paramref name="snapshot"/> (null when not sharded: all of them).
    /// </summary>
    public bool[]? ShardsHeldBy(ClusterMembershipSnapshot snapshot, SiloAddress silo)
    {
        if (!Sharded)
        {
            return null;
        }

        var view = ViewOf(snapshot);
        lock (view.Held)
        {
            if (!view.Held.TryGetValue(silo, out var held))
            {
                held = new bool[_shards];
                for (var shard = 0; shard < _shards; shard++)
                {
                    held[shard] = Array.IndexOf(view.Holders[shard], silo) >= 0;
                }

                view.Held[silo] = held;
            }

            return held;
        }
    }

    /// <summary>
    /// The part of <paramref name="routes"/> a silo holding <paramref name="held"/> keeps: the client's entry with its
    /// wildcard filters and its exact filters of those shards (all of them when <paramref name="held"/> is null).
    /// </summary>
    public ClientRoutes PartFor(ClientRoutes routes, bool[]? held)
    {
        if (held is null || routes.Subscriptions.Length == 0)
        {
            return routes;
        }

        List<Subscription>? kept = null;
        var subscriptions = routes.Subscriptions;
        for (var i = 0; i < subscriptions.Length; i++)
        {
            var shard = ShardOf(subscriptions[i]);
            var keep = shard < 0 || held[shard];
            if (!keep && kept is null)
            {
                kept = new List<Subscription>(subscriptions.Length);
                for (var j = 0; j < i; j++)
                {
                    kept.Add(subscriptions[j]);
                }
            }
            else if (keep && kept is not null)
            {
                kept.Add(subscriptions[i]);
            }
        }

        return kept is null
            ? routes
            : routes with { Subscriptions = [.. kept], SubscriptionTotal = routes.SubscriptionTotal ?? subscriptions.Length };
    }

    /// <summary>
    /// How many silos besides its home hold a client's entry (<see cref="IsEntryHolder"/>): <c>Copies</c> - 1 or
    /// <c>SessionReplicas</c> - 1, whichever is more, at least one, so that the home's loss leaves one (while the home
    /// is not active one more silo holds it: <see cref="OthersHolding"/>).
    /// </summary>
    public int EntryCopies => _entryCopies;

    /// <summary>
    /// The silo whose name counts as a client's home for its entry holders: its home (<see cref="ClientRoutes.Home"/>)
    /// or, for a session kept in memory only, the silo it is active on. The session's own silo always holds its entry.
    /// </summary>
    public static string? EntryHome(ClientRoutes routes) => routes.Home ?? routes.ActiveOn;

    /// <summary>
    /// Whether <paramref name="silo"/> is one of the entry holders of a client in <paramref name="snapshot"/>: its home
    /// (the active silo named <paramref name="home"/>) or one of the first <see cref="EntryCopies"/> other active silos
    /// ranked by <see cref="SessionHolders.Rank"/> (the order the session's copies and its failover follow), one more
    /// while the silo named <paramref name="home"/> is not active (<see cref="OthersHolding"/>). These get every version
    /// of a client's routes, also those that change only its presence. The first active silo of the client's ranking by
    /// id alone (<see cref="EntryLookupOrder"/>) is always one of them, whatever the home.
    /// </summary>
    public bool IsEntryHolder(ClusterMembershipSnapshot snapshot, string clientId, string? home, SiloAddress silo)
    {
        var view = ViewOf(snapshot);
        if (!view.Index.TryGetValue(silo, out var index))
        {
            return false;
        }

        var active = view.Active;
        var name = active[index].Name;
        if (string.Equals(name, home, StringComparison.Ordinal))
        {
            return true;
        }

        // The silos of this view and their names are listed once per view; the client's id is hashed once.
        var seed = SessionHolders.Seed(clientId);
        var score = SessionHolders.ScoreFrom(seed, name);
        var ahead = 0;
        var homeActive = false;
        for (var i = 0; i < active.Length; i++)
        {
            if (i == index)
            {
                continue;
            }

            if (string.Equals(active[i].Name, home, StringComparison.Ordinal))
            {
                homeActive = true;
                continue;
            }

            var otherScore = SessionHolders.ScoreFrom(seed, active[i].Name);
            if (otherScore > score || (otherScore == score && active[i].Silo.CompareTo(silo) < 0))
            {
                ahead++;
            }
        }

        return ahead < OthersHolding(home, homeActive);
    }

    /// <summary>
    /// The entry holders of a client in <paramref name="snapshot"/> (<see cref="IsEntryHolder"/>): the active silo named
    /// <paramref name="home"/>, if any, and the first <see cref="OthersHolding"/> other active silos of its ranking. One
    /// ranking of the client for every silo asked about, where a pass over many clients asks about several silos.
    /// </summary>
    public SiloAddress[] EntryHoldersOf(ClusterMembershipSnapshot snapshot, string clientId, string? home)
    {
        var active = ViewOf(snapshot).Active;
        var seed = SessionHolders.Seed(clientId);
        SiloAddress? homeSilo = null;
        var best = new (ulong Score, SiloAddress Silo)[Math.Min(_entryCopies + 1, active.Length)];
        var count = 0;
        for (var i = 0; i < active.Length; i++)
        {
            var (name, silo) = active[i];
            if (string.Equals(name, home, StringComparison.Ordinal))
            {
                homeSilo ??= silo;
                continue;
            }

            // Insertion into the few best so far, highest score first, equal scores by address (as SessionHolders.Rank).
            var score = SessionHolders.ScoreFrom(seed, name);
            var at = count;
            while (at > 0 && (best[at - 1].Score < score || (best[at - 1].Score == score && best[at - 1].Silo.CompareTo(silo) > 0)))
            {
                at--;
            }

            if (at >= best.Length)
            {
                continue;
            }

            var last = Math.Min(count, best.Length - 1);
            for (var j = last; j > at; j--)
            {
                best[j] = best[j - 1];
            }

            best[at] = (score, silo);
            count = Math.Min(count + 1, best.Length);
        }

        count = Math.Min(count, OthersHolding(home, homeActive: homeSilo is not null));
        var holders = new SiloAddress[count + (homeSilo is null ? 0 : 1)];
        for (var i = 0; i < count; i++)
        {
            holders[i] = best[i].Silo;
        }

        if (homeSilo is not null)
        {
            holders[count] = homeSilo;
        }

        return holders;
    }

    /// <summary>
    /// How many silos of a client's ranking hold its entry besides its home: <see cref="EntryCopies"/>, and one more while
    /// a home is named but not active. Those are then the silos its session's copies are kept on and it fails over to
    /// (<see cref="SessionHolders.CopyHolders"/>: <c>SessionReplicas</c> of them once the home is gone), so that every
    /// silo holding a copy also holds the entry a recovery starts from, and the loss of the home takes none of its
    /// entry's copies with it.
    /// </summary>
    private int OthersHolding(string? home, bool homeActive) => home is null || homeActive ? _entryCopies : _entryCopies + 1;

    /// <summary>
    /// Whether <paramref name="silo"/> is an entry holder of <paramref name="clientId"/> whatever its home: one of the
    /// first <see cref="EntryCopies"/> active silos of its ranking by id (leaving the home out only moves it up). Such a
    /// silo that holds no entry for the client knows there is none (once caught up).
    /// </summary>
    public bool IsSureEntryHolder(ClusterMembershipSnapshot snapshot, string clientId, SiloAddress silo) =>
        Array.IndexOf(EntryHoldersOf(snapshot, clientId, home: null), silo) >= 0;

    /// <summary>
    /// The active silos ranked by client id alone, best first (<see cref="SessionHolders.Rank"/> with no home left out):
    /// the first is an entry holder of the client whatever its home, and where a new session is placed.
    /// </summary>
    public static List<SiloAddress> EntryLookupOrder(ClusterMembershipSnapshot snapshot, string clientId) =>
        SessionHolders.Rank(snapshot, clientId, home: null, exclude: null);

    /// <summary>
    /// Whether <paramref name="silo"/> holds some of <paramref name="routes"/> with routes sharded by topic: it is an
    /// entry holder, or a route holder of the shard of one of its exact filters, or the client has a wildcard filter
    /// (which every silo matches). Always true when not sharded. With <paramref name="kept"/> (this silo's
    /// <see cref="KeptShards"/>), also for an exact filter of a shard this silo keeps.
    /// </summary>
    public bool Holds(ClusterMembershipSnapshot snapshot, ClientRoutes routes, SiloAddress silo, bool[]? kept = null)
    {
        if (!Sharded)
        {
            return true;
        }

        foreach (var s in routes.Subscriptions)
        {
            var shard = ShardOf(s);
            if (shard < 0 || (kept is not null && kept[shard]) || Array.IndexOf(HoldersOf(snapshot, shard), silo) >= 0)
            {
                return true;
            }
        }

        return IsEntryHolder(snapshot, routes.ClientId, EntryHome(routes), silo);
    }

    /// <summary>
    /// The silo that acts for a client's session where only one must (the sweep, the dead-gateway pass): its home when
    /// active, otherwise the first silo of its holder ranking, where its session fails over. Both are entry holders.
    /// </summary>
    public static SiloAddress? FirstEntryHolder(ClusterMembershipSnapshot snapshot, string clientId, string? home)
    {
        SiloAddress? best = null;
        var bestScore = 0UL;
        var seed = SessionHolders.Seed(clientId);
        foreach (var member in snapshot.Members.Values)
        {
            if (member.Status != SiloStatus.Active)
            {
                continue;
            }

            var name = NameOf(member);
            if (string.Equals(name, home, StringComparison.Ordinal))
            {
                return member.SiloAddress;
            }

            var score = SessionHolders.ScoreFrom(seed, name);
            if (best is null || score > bestScore || (score == bestScore && member.SiloAddress.CompareTo(best) < 0))
            {
                best = member.SiloAddress;
                bestScore = score;
            }
        }

        return best;
    }

    /// <summary>
    /// The silos that hold some of <paramref name="routes"/> (<see cref="Holds"/>): its entry holders
    /// (<see cref="IsEntryHolder"/>) and the route holders of the shards of its exact filters, whose shard grains push
    /// to its connection. Null when it has a wildcard filter: every silo matches those, so every silo holds it. A change
    /// of only the presence goes to these; any other change to these and to those of the version before it.
    /// </summary>
    public HashSet<SiloAddress>? PresenceHoldersOf(ClusterMembershipSnapshot snapshot, ClientRoutes routes)
    {
        var silos = new HashSet<SiloAddress>();
        foreach (var s in routes.Subscriptions)
        {
            var shard = ShardOf(s);
            if (shard < 0)
            {
                return null;
            }

            silos.UnionWith(HoldersOf(snapshot, shard));
        }

        AddEntryHolders(snapshot, routes.ClientId, EntryHome(routes), silos);
        return silos;
    }

    /// <summary>
    /// Adds the entry holders of a client (<see cref="IsEntryHolder"/>) to <paramref name="silos"/>: one ranking, not one
    /// per silo, for the write of every change.
    /// </summary>
    public void AddEntryHolders(ClusterMembershipSnapshot snapshot, string clientId, string? home, HashSet<SiloAddress> silos)
    {
        foreach (var silo in EntryHoldersOf(snapshot, clientId, home))
        {
            silos.Add(silo);
        }
    }

    /// <summary>
    /// Whether a change from <paramref name="previous"/> to <paramref name="next"/> changes only the presence of a
    /// persistent session (a reconnect, a disconnect, a save that moves the state base): same home, subscriptions,
    /// user name and expiry, so every silo's older version still says everything but the presence.
    /// </summary>
    public static bool OnlyPresenceChanged(ClientRoutes previous, ClientRoutes next) =>
        previous.Persistent && next.Persistent
        && previous.Version < next.Version
        && string.Equals(previous.ClientId, next.ClientId, StringComparison.Ordinal)
        && string.Equals(previous.Home, next.Home, StringComparison.Ordinal)
        && string.Equals(previous.ActiveOn, next.ActiveOn, StringComparison.Ordinal)
        && string.Equals(previous.UserName, next.UserName, StringComparison.Ordinal)
        && previous.SessionExpiryInterval == next.SessionExpiryInterval
        && previous.SubscriptionTotal is null && next.SubscriptionTotal is null
        && previous.Subscriptions.AsSpan().SequenceEqual(next.Subscriptions);

    /// <summary>
    /// Completes when this silo holds every route of <paramref name="shard"/>: at once, unless the silo came to hold the
    /// shard with a membership change and is still copying its routes from the previous holders.
    /// </summary>
    public Task WhenCaughtUp(int shard)
    {
        lock (_catchingUp)
        {
            return _catchingUp.TryGetValue(shard, out var pending) ? pending.Task : Task.CompletedTask;
        }
    }

    /// <summary>
    /// Completes when this silo's replica has taken in membership <paramref name="version"/> (marked the shards it came
    /// to hold as catching up) and holds every route of <paramref name="shard"/>: what a shard grain waits for before
    /// it matches.
    /// </summary>
    public async Task WhenServable(int shard, MembershipVersion version)
    {
        await WhenFollowed(version);
        await WhenCaughtUp(shard);
    }

    /// <summary>
    /// Completes when this silo's replica has taken in membership <paramref name="version"/> and holds the newest
    /// version of every client it is an entry holder of in it: what a read of an entry here waits for before it
    /// takes a missing entry for "no session" (<see cref="EntryLocator"/>).
    /// </summary>
    public async Task WhenEntriesServable(MembershipVersion version)
    {
        await WhenFollowed(version);
        Task? pending;
        lock (_catchingUp)
        {
            pending = _entriesCatchingUp?.Task;
        }

        if (pending is not null)
        {
            await pending;
        }
    }

    /// <summary>Marks the entries of the clients this silo came to be an entry holder of as being copied.</summary>
    public void MarkEntriesCatchingUp()
    {
        lock (_catchingUp)
        {
            _entriesCatchingUp ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    /// <summary>Releases the reads waiting on <see cref="MarkEntriesCatchingUp"/>.</summary>
    public void MarkEntriesCaughtUp()
    {
        TaskCompletionSource? pending;
        lock (_catchingUp)
        {
            pending = _entriesCatchingUp;
            _entriesCatchingUp = null;
        }

        pending?.TrySetResult();
    }

    /// <summary>Completes when this silo's replica has taken in membership <paramref name="version"/>.</summary>
    public async Task WhenFollowed(MembershipVersion version)
    {
        while (true)
        {
            Task changed;
            lock (_catchingUp)
            {
                if (_followed >= version)
                {
                    break;
                }

                changed = _followedChanged.Task;
            }

            await changed;
        }
    }

    /// <summary>Records that the replica has taken in membership <paramref name="version"/> (see <see cref="WhenServable"/>).</summary>
    public void MarkFollowed(MembershipVersion version)
    {
        TaskCompletionSource changed;
        lock (_catchingUp)
        {
            if (version <= _followed)
            {
                return;
            }

            _followed = version;
            changed = _followedChanged;
            _followedChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    /// <summary>
    /// Takes in the shards this silo holds in a membership view it follows: drops from <paramref name="table"/> the exact
    /// routes of the shards it no longer holds, except those of shards a shard grain activation here still serves
    /// (they go when it ends, <see cref="EndServing"/>), and marks <paramref name="gained"/> as catching up, all at once
    /// for a shard activation starting meanwhile (<see cref="BeginServing"/>). Returns how many routes were dropped.
    /// </summary>
    public int Follow(RouteTable table, bool[] held, IEnumerable<int> gained)
    {
        TaskCompletionSource changed;
        int pruned;
        lock (_catchingUp)
        {
            // The first view taken in prunes what the durable replica brought back of shards others hold now.
            var lost = _kept is null;
            if (_kept is { } before)
            {
                for (var shard = 0; shard < held.Length && !lost; shard++)
                {
                    lost = before[shard] && !held[shard];
                }
            }

            _kept = held;
            MarkCatchingUpLocked(gained);
            pruned = lost || _served.Count > 0 ? table.Prune(this, KeptLocked()) : 0;
            changed = _servedChanged;
            _servedChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
        return pruned;
    }

    /// <summary>
    /// Records that a shard grain activation on this silo serves <paramref name="shard"/>: its exact routes stay in this
    /// silo's table until the activation ends, whatever membership says. Returns whether the table holds them now (the
    /// silo is one of the shard's holders, or catching up as one: see <see cref="WhenCaughtUp"/>); when not, the
    /// activation copies them itself before it serves.
    /// </summary>
    public bool BeginServing(int shard)
    {
        lock (_catchingUp)
        {
            _served[shard] = _served.GetValueOrDefault(shard) + 1;
            return _kept is null || _kept[shard];
        }
    }

    /// <summary>
    /// Of <paramref name="shards"/>, those a shard grain activation on this silo serves now (see
    /// <see cref="BeginServing"/>); empty when none.
    /// </summary>
    public int[] Serving(int[] shards)
    {
        lock (_catchingUp)
        {
            var count = 0;
            foreach (var shard in shards)
            {
                count += _served.ContainsKey(shard) ? 1 : 0;
            }

            if (count == 0)
            {
                return [];
            }

            var served = new int[count];
            count = 0;
            foreach (var shard in shards)
            {
                if (_served.ContainsKey(shard))
                {
                    served[count++] = shard;
                }
            }

            return served;
        }
    }

    /// <summary>
    /// Records that a shard grain activation on this silo ended; the shard's exact routes are dropped from
    /// <paramref name="table"/> when this silo no longer holds the shard.
    /// </summary>
    public void EndServing(int shard, RouteTable table)
    {
        TaskCompletionSource changed;
        lock (_catchingUp)
        {
            if (_served.TryGetValue(shard, out var count) && count > 1)
            {
                _served[shard] = count - 1;
                return;
            }

            _served.Remove(shard);
            if (_kept is { } kept && !kept[shard])
            {
                table.Prune(this, KeptLocked());
            }

            changed = _servedChanged;
            _servedChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    /// <summary>
    /// The shards whose exact routes this silo's table keeps: those it holds and those a shard grain activation here
    /// serves (null when not sharded or not pruned yet: all of them).
    /// </summary>
    public bool[]? KeptShards()
    {
        lock (_catchingUp)
        {
            return _kept is null ? null : KeptLocked();
        }
    }

    /// <summary>
    /// Null when every shard a shard grain activation on this silo serves is one this silo holds (as almost always);
    /// otherwise the part of a client's routes with its exact filters of the other served shards, which an order to
    /// forget the client (<see cref="RouteTable.Drop"/>, sent by a silo whose view no longer names this one) leaves.
    /// </summary>
    public Func<ClientRoutes, ClientRoutes>? ServedPart()
    {
        bool[]? only = null;
        lock (_catchingUp)
        {
            foreach (var shard in _served.Keys)
            {
                if (_kept is not null && !_kept[shard])
                {
                    (only ??= new bool[_shards])[shard] = true;
                }
            }
        }

        return only is null ? null : routes => PartFor(routes, only);
    }

    /// <summary>Completes when no shard grain activation on this silo serves a shard this silo does not hold.</summary>
    public async Task WhenServingOnlyHeld()
    {
        while (true)
        {
            Task changed;
            lock (_catchingUp)
            {
                if (_kept is not { } kept || _served.Keys.All(shard => kept[shard]))
                {
                    return;
                }

                changed = _servedChanged.Task;
            }

            await changed;
        }
    }

    private bool[] KeptLocked()
    {
        var kept = (bool[])_kept!.Clone();
        foreach (var shard in _served.Keys)
        {
            kept[shard] = true;
        }

        return kept;
    }

    /// <summary>Marks shards this silo came to hold as being caught up (see <see cref="WhenCaughtUp"/>).</summary>
    public void MarkCatchingUp(IEnumerable<int> shards)
    {
        lock (_catchingUp)
        {
            MarkCatchingUpLocked(shards);
        }
    }

    private void MarkCatchingUpLocked(IEnumerable<int> shards)
    {
        foreach (var shard in shards)
        {
            if (!_catchingUp.ContainsKey(shard))
            {
                _catchingUp[shard] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>Releases the shards marked by <see cref="MarkCatchingUp"/>.</summary>
    public void MarkCaughtUp(IEnumerable<int> shards)
    {
        lock (_catchingUp)
        {
            foreach (var shard in shards)
            {
                if (_catchingUp.Remove(shard, out var pending))
                {
                    pending.TrySetResult();
                }
            }
        }
    }

    private View ViewOf(ClusterMembershipSnapshot snapshot)
    {
        var view = _view;
        if (view is not null && view.Version == snapshot.Version)
        {
            return view;
        }

        // The view before: a pass that took its snapshot before a membership change, running beside readers of the
        // new one, does not rebuild both in turn.
        var previous = _previousView;
        if (previous is not null && previous.Version == snapshot.Version)
        {
            return previous;
        }

        var active = new List<(string Name, SiloAddress Silo)>();
        foreach (var member in snapshot.Members.Values)
        {
            if (member.Status == SiloStatus.Active)
            {
                active.Add((NameOf(member), member.SiloAddress));
            }
        }

        var holders = new SiloAddress[_shards][];
        var ranked = new List<(ulong Score, SiloAddress Silo)>(active.Count);
        for (var shard = 0; shard < _shards; shard++)
        {
            ranked.Clear();
            var key = ShardKey(shard);
            foreach (var (name, silo) in active)
            {
                ranked.Add((SessionHolders.Score(key, name), silo));
            }

            ranked.Sort(static (a, b) => a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Silo.CompareTo(b.Silo));
            var count = Math.Min(_copies, ranked.Count);
            var shardHolders = new SiloAddress[count];
            for (var i = 0; i < count; i++)
            {
                shardHolders[i] = ranked[i].Silo;
            }

            holders[shard] = shardHolders;
        }

        var index = new Dictionary<SiloAddress, int>(active.Count);
        for (var i = 0; i < active.Count; i++)
        {
            index[active[i].Silo] = i;
        }

        view = new View(snapshot.Version, holders, [.. active], index);
        if (_view is { } current && current.Version < view.Version)
        {
            _previousView = current;
            _view = view;
        }
        else if (_view is null)
        {
            _view = view;
        }
        else
        {
            _previousView = view;
        }

        return view;
    }

    private static string NameOf(ClusterMember member) => member.Name ?? member.SiloAddress.ToParsableString();

    // Not a client id any MQTT client can have (the NUL character is not allowed in one), though the scores would not
    // collide in a way that matters if it were.
    private static string ShardKey(int shard) => "\0shard/" + shard.ToString(System.Globalization.CultureInfo.InvariantCulture);

    // One membership view: each shard's holders, the active silos with their names, and each one's place in that list.
    private sealed record View(MembershipVersion Version, SiloAddress[][] Holders, (string Name, SiloAddress Silo)[] Active, Dictionary<SiloAddress, int> Index)
    {
        public Dictionary<SiloAddress, bool[]> Held { get; } = [];
    }
}
