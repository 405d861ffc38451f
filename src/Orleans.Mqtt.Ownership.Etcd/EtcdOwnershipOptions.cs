namespace Orleans.Mqtt.Ownership.Etcd;

/// <summary>Where session ownership records live in etcd and how commits are batched into etcd transactions.</summary>
public sealed class EtcdOwnershipOptions
{
    /// <summary>The configuration section these options are usually bound from.</summary>
    public const string SectionName = "Ownership:Etcd";

    /// <summary>The most operations etcd accepts in one transaction with its default <c>--max-txn-ops</c>.</summary>
    public const int EtcdDefaultMaxTxnOps = 128;

    /// <summary>
    /// The etcd endpoints, comma-separated, each with its scheme: <c>http://127.0.0.1:2379</c> or
    /// <c>https://etcd-0:2379,https://etcd-1:2379</c>. Plain <c>http</c> endpoints use an insecure gRPC channel.
    /// </summary>
    public string ConnectionString { get; set; } = string.Empty;

    /// <summary>The key prefix: each client id's record is <c>{KeyPrefix}/{ClusterId}/owners/{clientId}</c>.</summary>
    public string KeyPrefix { get; set; } = "/orleans-mqtt";

    /// <summary>The cluster the records belong to; when empty, the host's <c>Orleans:ClusterId</c> is used.</summary>
    public string ClusterId { get; set; } = string.Empty;

    /// <summary>
    /// The most commits sent in one etcd transaction. etcd refuses transactions with more operations than its
    /// <c>--max-txn-ops</c> (128 by default); raise this above 128 only together with that server setting.
    /// </summary>
    public int MaxBatchOperations { get; set; } = EtcdDefaultMaxTxnOps;

    /// <summary>
    /// The most bytes (keys and values, approximately) sent in one transaction; below etcd's default request
    /// limit of 1.5 MiB (<c>--max-request-bytes</c>). A single commit larger than this is still sent, alone.
    /// </summary>
    public int MaxBatchBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// How long the committer waits for more commits once it has one, before sending a batch that is not full.
    /// Zero sends what is queued at once (commits arriving during a transaction still form the next batch).
    /// </summary>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.FromMilliseconds(2);

    /// <summary>The deadline of each etcd request; the commits of a transaction still unanswered then fail.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The time to live of the gateway's lease (whole seconds); it is refreshed every third of it.</summary>
    public TimeSpan LeaseTtl { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often etcd's revision history is compacted, keeping the last interval of it (one silo of the cluster acts
    /// per interval). Zero turns it off, for an etcd started with its own <c>--auto-compaction-retention</c>; without
    /// either, every connect adds history that is never freed, and etcd stops taking writes at its storage quota.
    /// </summary>
    public TimeSpan CompactionInterval { get; set; } = TimeSpan.FromMinutes(5);
}
