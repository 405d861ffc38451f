namespace Orleans.Mqtt.Clustering.Consul;

/// <summary>One operation of a Consul KV transaction: a check-and-set write, applied only if the key's ModifyIndex is
/// <see cref="Index"/> (0: only if the key does not exist).</summary>
internal readonly record struct CasPut(string Key, byte[] Value, ulong Index);
