using Microsoft.Extensions.Options;

namespace Orleans.Mqtt.Clustering.Consul;

/// <summary>Rejects Consul clustering options that cannot work, naming the setting.</summary>
public sealed class ConsulClusteringOptionsValidator : IValidateOptions<ConsulClusteringOptions>
{
    private const string Section = ConsulClusteringOptions.SectionName;

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, ConsulClusteringOptions options)
    {
        var errors = new List<string>();
        if (options.Address is not { IsAbsoluteUri: true } address
            || (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps))
        {
            errors.Add($"{Section}:Address must be an absolute http:// or https:// URL such as http://127.0.0.1:8500 (was '{options.Address}').");
        }

        if (string.IsNullOrWhiteSpace(options.KeyPrefix) || options.KeyPrefix.Trim('/').Length == 0)
        {
            errors.Add($"{Section}:KeyPrefix must name a key prefix such as orleans-mqtt (was '{options.KeyPrefix}').");
        }

        if (options.AclToken is { } token && string.IsNullOrWhiteSpace(token))
        {
            errors.Add($"{Section}:AclToken is blank; leave it unset when Consul has no ACLs.");
        }

        if (options.RequestTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{Section}:RequestTimeout must be positive (was {options.RequestTimeout}).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
