namespace Orleans.Mqtt.Clustering;

/// <summary>
/// Where a host keeps session ownership. A cluster needs one record per client id that every silo sees: with etcd
/// clustering it goes to the same etcd (or the one named by <c>Ownership:Etcd:ConnectionString</c>); with Consul
/// clustering <c>Ownership:Etcd:ConnectionString</c> is required; a Localhost (single-silo) host keeps it in memory.
/// </summary>
internal static class OwnershipSetting
{
    public const string EtcdConnectionStringKey = "Ownership:Etcd:ConnectionString";

    /// <summary>True when ownership goes to etcd; a startup error naming the setting when a cluster has no etcd for it.</summary>
    public static bool UsesEtcd(Microsoft.Extensions.Configuration.IConfiguration configuration)
    {
        if (!string.IsNullOrWhiteSpace(configuration[EtcdConnectionStringKey]))
        {
            return true;
        }

        return ClusteringProviderSetting.Of(configuration) switch
        {
            ClusteringProvider.Etcd => true,
            ClusteringProvider.Consul => throw new InvalidOperationException(
                $"{ClusteringProviderSetting.Key}=Consul needs {EtcdConnectionStringKey}: session ownership is committed to etcd "
                + "so that a client id has one owner across the cluster."),
            _ => false,
        };
    }
}
