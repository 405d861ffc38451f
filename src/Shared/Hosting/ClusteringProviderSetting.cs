namespace Orleans.Mqtt.Clustering;

/// <summary>Reads <c>Clustering:Provider</c>.</summary>
internal static class ClusteringProviderSetting
{
    public const string Key = "Clustering:Provider";

    /// <summary>The configured provider (Localhost when unset); a startup error naming the setting for anything else.</summary>
    public static ClusteringProvider Of(Microsoft.Extensions.Configuration.IConfiguration configuration)
    {
        var value = configuration[Key];
        if (string.IsNullOrEmpty(value))
        {
            return ClusteringProvider.Localhost;
        }

        return Enum.TryParse<ClusteringProvider>(value, ignoreCase: true, out var provider) && Enum.IsDefined(provider)
            ? provider
            : throw new InvalidOperationException($"{Key} must be Localhost, Etcd or Consul (was '{value}').");
    }
}
