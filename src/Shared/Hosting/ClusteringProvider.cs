namespace Orleans.Mqtt.Clustering;

/// <summary>
/// The membership provider named by <c>Clustering:Provider</c>. (Not under <c>Orleans:Clustering</c>: Orleans 10 reads
/// that section itself and expects one of its own registered provider types there.)
/// </summary>
internal enum ClusteringProvider
{
    Localhost,
    Etcd,
    Consul,
}
