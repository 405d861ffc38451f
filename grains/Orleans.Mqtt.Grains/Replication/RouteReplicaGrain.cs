using Orleans.Concurrency;

namespace Orleans.Mqtt.Grains;

/// <summary>Applies replicated route and retained changes to this silo's <see cref="RouteTable"/> and its durable copy.</summary>
[SiloPinnedPlacement]
[Reentrant]
internal sealed class RouteReplicaGrain(
    RouteTable table,
    ReplicaWriter writer,
    ReplicaBroadcaster broadcaster,
    EntryLocator locator,
    RouteHolders holders,
    IClusterMembershipService membership,
    ILocalSiloDetails localSilo) : Grain, IRouteReplicaGrain
{
    public Task Apply(ClientRoutes routes) => writer.ApplyAsync(routes);

    public async Task<int[]> ApplyAndAskServing(ClientRoutes routes, int[] shards)
    {
        await writer.ApplyAsync(routes);
        return holders.Serving(shards);
    }

    public Task Drop(string clientId, long version) => writer.DropAsync(clientId, version, holders.ServedPart());

    public Task ApplyRetained(RetainedUpdate update) => writer.ApplyRetainedAsync(update);

    public Task<SiloStats> GetStats()
    {
        var active = new List<string>();
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            if (member.Status == SiloStatus.Active)
            {
                active.Add(member.Name);
            }
        }

        var (sessions, subscriptions) = table.CountOwned(localSilo.Name, active);
        return Task.FromResult(new SiloStats(localSilo.Name, localSilo.SiloAddress.ToParsableString(), sessions, subscriptions, table.RetainedCount, table.IsReady));
    }

    public Task Barrier(long membershipVersion) => broadcaster.Barrier(new MembershipVersion(membershipVersion));

    public Task<bool> IsReady() => Task.FromResult(table.IsReady);

    public Task<long[]> Digest(int[]? shards, string? peer) =>
        Task.FromResult(table.Digest(holders, ShardSet(holders, shards), BothEntryHolders(holders, membership.CurrentSnapshot, localSilo.SiloAddress, peer)));

    public Task<ReplicaChunk> Read(int[] buckets, int[]? shards, bool onlyWithShards, string? entriesFor)
    {
        Func<ClientRoutes, bool>? alsoEntries = null;
        if (holders.Sharded && entriesFor is not null)
        {
            // Only what that silo holds: the clients it is an entry holder of and, for a whole copy, those with a
            // wildcard filter (the exact filters of its shards are picked by the table).
            var snapshot = membership.CurrentSnapshot;
            var silo = SiloAddress.FromParsableString(entriesFor);
            alsoEntries = r => holders.IsEntryHolder(snapshot, r.ClientId, RouteHolders.EntryHome(r), silo) || (!onlyWithShards && HasWildcard(holders, r));
        }

        var (routes, retained) = table.Read(new HashSet<int>(buckets), holders, ShardSet(holders, shards), onlyWithShards, alsoEntries);
        return Task.FromResult(new ReplicaChunk([.. routes], [.. retained]));
    }

    /// <summary>
    /// With routes sharded by topic, whether <paramref name="self"/> and <paramref name="peer"/> both hold a client as
    /// its entry holders (see <see cref="RouteTable.Digest(RouteHolders?, bool[], Func{ClientRoutes, bool}?)"/>);
    /// null otherwise.
    /// </summary>
    internal static Func<ClientRoutes, bool>? BothEntryHolders(RouteHolders holders, ClusterMembershipSnapshot snapshot, SiloAddress self, string? peer)
    {
        if (!holders.Sharded || peer is null)
        {
            return null;
        }

        var other = SiloAddress.FromParsableString(peer);
        return r =>
        {
            // One ranking of the client for both silos.
            var entryHolders = holders.EntryHoldersOf(snapshot, r.ClientId, RouteHolders.EntryHome(r));
            return Array.IndexOf(entryHolders, self) >= 0 && Array.IndexOf(entryHolders, other) >= 0;
        };
    }

    private static bool HasWildcard(RouteHolders holders, ClientRoutes routes)
    {
        foreach (var s in routes.Subscriptions)
        {
            if (holders.ShardOf(s) < 0)
            {
                return true;
            }
        }

        return false;
    }

    public Task<ClientRoutes?> Get(string clientId) => Task.FromResult(table.Get(clientId));

    public async Task<ClientRoutes?> GetEntry(string clientId, long membershipVersion)
    {
        await table.Ready;
        var version = new MembershipVersion(membershipVersion);
        if (membership.CurrentSnapshot.Version < version)
        {
            await membership.Refresh(version);
        }

        var (trusted, local) = await locator.ReadLocalAsync(clientId, version);

        // Not an entry holder in this silo's view (the asker's view is older or newer): every silo's part, merged.
        return trusted ? local : await broadcaster.ReadWholeAsync(clientId);
    }

    /// <summary>A list of topic shards as the flags <see cref="RouteTable"/> takes (null stays null).</summary>
    internal static bool[]? ShardSet(RouteHolders holders, int[]? shards)
    {
        if (shards is null)
        {
            return null;
        }

        var set = new bool[holders.Shards];
        foreach (var shard in shards)
        {
            if ((uint)shard < (uint)set.Length)
            {
                set[shard] = true;
            }
        }

        return set;
    }
}
