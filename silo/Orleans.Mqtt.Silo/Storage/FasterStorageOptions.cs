namespace Orleans.Mqtt.Silo.Storage;

/// <summary>
/// Options of the FASTER KV grain storage provider. State is kept on the silo's local disk under
/// <c>DataDirectory/grain-state/&lt;providerName&gt;</c>.
/// </summary>
public sealed class FasterStorageOptions
{
    /// <summary>The smallest accepted <see cref="MemorySizeBytes"/>: 16 MiB.</summary>
    public const long MinMemorySizeBytes = 16L * 1024 * 1024;

    /// <summary>
    /// Root data directory of the silo. The provider keeps its log and checkpoints in
    /// <c>DataDirectory/grain-state/&lt;providerName&gt;</c>. Each silo needs its own directory.
    /// </summary>
    public string DataDirectory { get; set; } = "./data";

    /// <summary>
    /// Size of the in-memory part of the FASTER hybrid log, in bytes (rounded down to a power of two,
    /// at least 16 MiB). Records beyond it are read back from disk. The log page size is derived from
    /// it (memory / 16, between 64 KiB and 4 MiB) and bounds the size of one stored grain state.
    /// </summary>
    public long MemorySizeBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>
    /// Number of buckets of the FASTER hash index (a power of two). Each bucket takes 64 bytes of memory
    /// and holds up to 7 keys before chaining; aim for about one bucket per 4 stored records. The session storage's
    /// store also holds the route replica (a record per persistent session and per retained message), so the
    /// default, 262,144 buckets (16 MiB), suits about half a million persistent sessions on one silo; raise it for more.
    /// </summary>
    public long IndexBuckets { get; set; } = 1L << 18;

    /// <summary>
    /// Group-commit pacing: the least time between the starts of two commits (a write and sync of the write-ahead
    /// log). Writes arriving in that window share the next commit. <see cref="TimeSpan.Zero"/> commits back to back.
    /// </summary>
    public TimeSpan CommitInterval { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// How often a full checkpoint (hash index and a snapshot of the log) is taken when anything changed. Recovery
    /// loads the latest one and replays the write-ahead log written after it, so this bounds recovery time and the
    /// log's size on disk (a log grown past <see cref="MemorySizeBytes"/>, at least 64 MiB, forces one sooner).
    /// </summary>
    public TimeSpan IndexCheckpointInterval { get; set; } = TimeSpan.FromMinutes(1);
}
