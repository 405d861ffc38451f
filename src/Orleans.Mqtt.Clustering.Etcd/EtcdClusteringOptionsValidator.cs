using Microsoft.Extensions.Options;

namespace Orleans.Mqtt.Clustering.Etcd;

/// <summary>Rejects etcd clustering options that cannot work, naming the setting.</summary>
public sealed class EtcdClusteringOptionsValidator : IValidateOptions<EtcdClusteringOptions>
{
    private const string Section = EtcdClusteringOptions.SectionName;

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, EtcdClusteringOptions options)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            errors.Add($"{Section}:ConnectionString is required (e.g. http://127.0.0.1:2379).");
        }
        else
        {
            foreach (var endpoint in EtcdEndpoints.Split(options.ConnectionString))
            {
                if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri)
                    || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                    || uri.IsDefaultPort)
                {
                    errors.Add($"{Section}:ConnectionString has '{endpoint}', which is not an http:// or https:// URL with a port.");
                }
            }
        }

        if (string.IsNullOrWhiteSpace(options.KeyPrefix) || options.KeyPrefix.Trim('/').Length == 0)
        {
            errors.Add($"{Section}:KeyPrefix must name a key prefix such as /orleans-mqtt (was '{options.KeyPrefix}').");
        }

        if (options.RequestTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{Section}:RequestTimeout must be positive (was {options.RequestTimeout}).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

internal static class EtcdEndpoints
{
    public static string[] Split(string connectionString) =>
        connectionString.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
