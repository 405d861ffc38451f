namespace Orleans.Mqtt.Clustering.Consul;

/// <summary>Where the Orleans membership table lives in Consul's key/value store.</summary>
public sealed class ConsulClusteringOptions
{
    /// <summary>The configuration section these options are usually bound from.</summary>
    public const string SectionName = "Clustering:Consul";

    /// <summary>The HTTP address of a Consul agent or server, e.g. <c>http://127.0.0.1:8500</c>.</summary>
    public Uri Address { get; set; } = new("http://127.0.0.1:8500");

    /// <summary>
    /// The key prefix under which each cluster id gets its own folder:
    /// <c>{KeyPrefix}/{clusterId}/version</c> and <c>{KeyPrefix}/{clusterId}/members/{silo}</c>.
    /// </summary>
    public string KeyPrefix { get; set; } = "orleans-mqtt";

    /// <summary>The ACL token sent as <c>X-Consul-Token</c>, or null where Consul has no ACLs. Never logged.</summary>
    public string? AclToken { get; set; }

    /// <summary>The timeout of each Consul HTTP request.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The settings with the ACL token redacted, fit for a log line.</summary>
    public override string ToString() =>
        $"Address={Address}, KeyPrefix={KeyPrefix}, AclToken={(AclToken is null ? "(none)" : "***")}, RequestTimeout={RequestTimeout}";
}
