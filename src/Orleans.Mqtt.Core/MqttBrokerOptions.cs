namespace Orleans.Mqtt;

/// <summary>Broker behaviour shared by the silo side (configuration section <c>Mqtt</c>).</summary>
public sealed class MqttBrokerOptions
{
    /// <summary>The configuration section the options bind to.</summary>
    public const string SectionName = "Mqtt";

    /// <summary>Number of topic shards (grains) the topic space is hashed into. Must stay the same across a cluster's life.</summary>
    public int TopicShards { get; set; } = 256;

    /// <summary>Maximum messages queued per session (offline queue plus messages waiting for the in-flight window).</summary>
    public int MaxQueuedMessages { get; set; } = 1000;

    /// <summary>Maximum outbound QoS 1/2 messages in flight per connection (further limited by the client's Receive Maximum).</summary>
    public int MaxInflightMessages { get; set; } = 32;

    /// <summary>How often each silo looks for disconnected sessions whose delayed will is due or that have expired.</summary>
    public TimeSpan SessionSweepInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often each silo compares its route replica's digest with a peer's and repairs what differs.</summary>
    public TimeSpan ReplicaRepairInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a deletion is remembered in the replica (to reject late older changes); well above the repair interval.</summary>
    public TimeSpan ReplicaTombstoneLifetime { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// How many silos hold each persistent session's state (subscriptions, expiry, will, queue, in-flight messages,
    /// inbound QoS 2 ids): its home and <c>SessionReplicas - 1</c> more, all written before anything that depends on
    /// the state is acknowledged. Fewer when fewer silos are active (a single silo holds its sessions alone). 1 keeps
    /// the state on the home silo only: a session whose home dies before it comes back is then lost, and its client is
    /// told Session Present 0.
    /// </summary>
    public int SessionReplicas { get; set; } = 2;

    /// <summary>
    /// After a membership change each silo writes the copies a session's new holders lack (re-replication): at most
    /// this many sessions per call to one silo (and at most 1 MiB of queued payloads).
    /// </summary>
    public int SessionRereplicationBatch { get; set; } = 128;

    /// <summary>
    /// The pause between two re-replication calls of one silo, so that a pass over many idle sessions leaves room for
    /// live traffic; zero sends the batches back to back (still one at a time).
    /// </summary>
    public TimeSpan SessionRereplicationPause { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// How often the cluster's <c>$SYS/broker/…</c> topics are published (<c>Mqtt:SysInterval</c>), once for the whole
    /// cluster by the gateway directory grain; zero turns them off.
    /// </summary>
    public TimeSpan SysInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>A gateway not heard from for this long is dead: its connections' sessions become offline and their wills go out.</summary>
    public TimeSpan GatewayTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a takeover waits for the older connection's gateway to confirm it closed that connection before the
    /// new connection gets its CONNACK. A live gateway answers in milliseconds; a killed one never does, and its
    /// clients, reconnecting through another gateway, would each wait Orleans' response timeout for it. Ownership in
    /// etcd already names the new connection, and the notice still goes out, only unawaited.
    /// </summary>
    public TimeSpan TakeoverNoticeTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A persistent session that has had nothing to do for this long leaves the silo's memory, also while its client
    /// stays connected: its state is stored and its routes name the connection, so the next message, acknowledgement
    /// or subscribe loads it again on its home silo. Clean sessions stay in memory while connected. An activated
    /// session costs the silo about 2.5 KB more than one that has left memory (Orleans' activation and the session's
    /// objects); loading it again costs one read of the local store and an activation, paid by the first message after
    /// an idle spell, not by messages that come more often than this.
    /// </summary>
    public TimeSpan SessionIdleTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Where the route replica keeps each subscription (<c>Mqtt:Routes:*</c>).</summary>
    public RoutesOptions Routes { get; set; } = new();

    /// <summary>
    /// How often each broker process checks whether its heap has grown by a quarter (32 MiB at least) since its last
    /// trim and stopped growing, or has gone twelve checks without a full collection, and if so starts a background
    /// full collection: what a connect storm leaves in the oldest generation, and what dies while the broker is idle,
    /// is freed even when the broker allocates too little to collect it by itself. Zero turns it off.
    /// </summary>
    public TimeSpan HeapTrimInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Whether a trim after growth whose background collection left a quarter of the heap free is followed by one
    /// blocking, compacting collection that gives that memory back to the system. It stops every thread of the process
    /// while it runs (192–253 ms for a silo holding 50,000 sessions, about 1.5 ms per MiB of heap left), once per connect
    /// storm. The first idle trim of the process is such a collection too, instead of a background one: it gives back
    /// what the start left free (36–46 ms for an idle standalone broker; docs/benchmarks.md, "An idle broker's freed
    /// heap, given back"). A node with a heap of several GiB that prefers resident memory to such a pause turns it off.
    /// </summary>
    public bool HeapCompactAfterGrowth { get; set; } = true;
}
