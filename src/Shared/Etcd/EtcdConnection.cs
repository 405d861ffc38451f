using dotnet_etcd;
using Grpc.Core;

namespace Orleans.Mqtt.Etcd;

/// <summary>
/// The etcd connection settings every etcd-backed component shares: a comma-separated list of endpoints, each an
/// http:// or https:// URL with a port; plain http endpoints use an insecure gRPC channel.
/// </summary>
internal static class EtcdConnection
{
    public static string[] Endpoints(string connectionString) =>
        connectionString.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static EtcdClient CreateClient(string connectionString)
    {
        var insecure = Array.TrueForAll(Endpoints(connectionString), e => e.StartsWith("http://", StringComparison.OrdinalIgnoreCase));
        return new EtcdClient(
            connectionString,
            configureChannelOptions: channel =>
            {
                if (insecure)
                {
                    channel.Credentials = ChannelCredentials.Insecure;
                }
            });
    }

    /// <summary>Adds an error naming <c>{section}:ConnectionString</c> and <c>{section}:KeyPrefix</c> for each value that cannot work.</summary>
    public static void Validate(string section, string? connectionString, string? keyPrefix, List<string> errors)
    {
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            errors.Add($"{section}:ConnectionString is required (e.g. http://127.0.0.1:2379).");
        }
        else
        {
            foreach (var endpoint in Endpoints(connectionString))
            {
                if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri)
                    || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                    || uri.IsDefaultPort)
                {
                    errors.Add($"{section}:ConnectionString has '{endpoint}', which is not an http:// or https:// URL with a port.");
                }
            }
        }

        if (string.IsNullOrWhiteSpace(keyPrefix) || keyPrefix.Trim('/').Length == 0)
        {
            errors.Add($"{section}:KeyPrefix must name a key prefix such as /orleans-mqtt (was '{keyPrefix}').");
        }
    }
}
