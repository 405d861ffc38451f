namespace Orleans.Mqtt.Clustering.Etcd;

/// <summary>Where the Orleans membership table lives in etcd.</summary>
public sealed class EtcdClusteringOptions
{
    /// <summary>The configuration section these options are usually bound from.</summary>
    public const string SectionName = "Clustering:Etcd";

    /// <summary>
    /// The etcd endpoints, comma-separated, each with its scheme: <c>http://127.0.0.1:2379</c> or
    /// <c>https://etcd-0:2379,https://etcd-1:2379</c>. Plain <c>http</c> endpoints use an insecure gRPC channel.
    /// </summary>
    public string ConnectionString { get; set; } = string.Empty;

    /// <summary>
    /// The key prefix under which each cluster id gets its own folder:
    /// <c>{KeyPrefix}/{clusterId}/version</c> and <c>{KeyPrefix}/{clusterId}/members/{silo}</c>.
    /// </summary>
    public string KeyPrefix { get; set; } = "/orleans-mqtt";

    /// <summary>The deadline of each etcd request; a request still unanswered then fails.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
