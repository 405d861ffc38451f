namespace Orleans.Mqtt.Grains;

/// <summary>The route and retained replica of one silo (the grain is pinned to the silo named by its key).</summary>
public interface IRouteReplicaGrain : IGrainWithStringKey
{
    /// <summary>Applies a client's routes if newer than what the replica holds; durable when the call returns.</summary>
    [ResponseTimeout("00:00:05")]
    Task Apply(ClientRoutes routes);

    /// <summary>
    /// Routes sharded by topic: <see cref="Apply"/>, then which of <paramref name="shards"/> (shards this silo holds in
    /// the writer's view) a shard grain activation on this silo serves once the change is in the table it matches on.
    /// </summary>
    [ResponseTimeout("00:00:05")]
    Task<int[]> ApplyAndAskServing(ClientRoutes routes, int[] shards);

    /// <summary>
    /// Routes sharded by topic: forgets a client's routes, which the change at <paramref name="version"/> left this
    /// silo none of, unless it holds a newer version; durable when the call returns.
    /// </summary>
    [ResponseTimeout("00:00:05")]
    Task Drop(string clientId, long version);

    /// <summary>Applies a retained message change if newer than what the replica holds; durable when the call returns.</summary>
    [ResponseTimeout("00:00:05")]
    Task ApplyRetained(RetainedUpdate update);

    /// <summary>This silo's share of the cluster's sessions and subscriptions, and its replica's retained count.</summary>
    [ResponseTimeout("00:00:05")]
    Task<SiloStats> GetStats();

    /// <summary>
    /// For a silo that just became active: returns once this silo sees membership at <paramref name="membershipVersion"/>
    /// or later (so every change it sends from now on includes the new silo) and every change it started sending
    /// before that has completed. After this barrier on every peer, a copy from any caught-up peer is complete.
    /// </summary>
    Task Barrier(long membershipVersion);

    /// <summary>Whether this silo's replica is complete (loaded and caught up), so a peer may copy from it.</summary>
    Task<bool> IsReady();

    /// <summary>
    /// The replica's digest: one hash sum per bucket (see the route table), for repair by comparison. With routes
    /// sharded by topic, <paramref name="shards"/> names the topic shards whose exact subscriptions both silos should
    /// hold (null: compare entries and versions only), and <paramref name="peer"/> the silo comparing (its address as
    /// <c>SiloAddress.ToParsableString</c>): only the clients both silos hold are compared.
    /// </summary>
    Task<long[]> Digest(int[]? shards, string? peer);

    /// <summary>
    /// What the replica holds in the given digest buckets, deletions included; with <paramref name="shards"/> (routes
    /// sharded by topic), each client's part for a silo holding those shards, and with <paramref name="onlyWithShards"/>
    /// only the clients with an exact filter in them; with <paramref name="entriesFor"/> (a silo's address as
    /// <c>SiloAddress.ToParsableString</c>), only what that silo holds: the clients with an exact filter in
    /// <paramref name="shards"/>, those it is an entry holder of and, unless <paramref name="onlyWithShards"/>, those with
    /// a wildcard filter.
    /// </summary>
    Task<ReplicaChunk> Read(int[] buckets, int[]? shards, bool onlyWithShards, string? entriesFor);

    /// <summary>The part of a client's routes this replica holds, or null.</summary>
    [ResponseTimeout("00:00:05")]
    Task<ClientRoutes?> Get(string clientId);

    /// <summary>
    /// Routes sharded by topic: a client's newest routes, asked of one of its entry holders by a silo that is not one
    /// (null: no session). Waits until this replica is complete and has taken in membership
    /// <paramref name="membershipVersion"/> (the asker's view); when this silo is no entry holder of the client in its
    /// own view, the answer is merged from every active silo.
    /// </summary>
    [ResponseTimeout("00:00:10")]
    Task<ClientRoutes?> GetEntry(string clientId, long membershipVersion);
}
