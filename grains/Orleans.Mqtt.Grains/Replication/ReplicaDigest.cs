using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// The digest two replicas compare: per bucket, a sum of hashes of (client id, version) — first
/// <see cref="Buckets"/> entries — and of (topic, version) of the retained messages — the next ones.
/// </summary>
internal static class ReplicaDigest
{
    /// <summary>Buckets of the digest: the client ids and the retained topics are each hashed into this many.</summary>
    public const int Buckets = 256;

    /// <summary>The digest bucket of a client id or retained topic.</summary>
    public static int BucketOf(string key) => MqttTopic.ShardOf(key, Buckets);

    /// <summary>The hash of one (key, version) pair; a bucket holds the sum of those of its keys.</summary>
    public static long Hash(string key, long version)
    {
        // FNV-1a over the key, mixed with the version through a SplitMix64 finaliser.
        var h = 14695981039346656037UL;
        foreach (var c in key)
        {
            h = (h ^ c) * 1099511628211UL;
        }

        h ^= (ulong)version * 0x9E3779B97F4A7C15UL;
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9UL;
        h = (h ^ (h >> 27)) * 0x94D049BB133111EBUL;
        return (long)(h ^ (h >> 31));
    }
}
