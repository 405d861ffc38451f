using Microsoft.Extensions.Options;
using Orleans.Mqtt.Etcd;

namespace Orleans.Mqtt.Clustering.Etcd;

/// <summary>Rejects etcd clustering options that cannot work, naming the setting.</summary>
public sealed class EtcdClusteringOptionsValidator : IValidateOptions<EtcdClusteringOptions>
{
    private const string Section = EtcdClusteringOptions.SectionName;

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, EtcdClusteringOptions options)
    {
        var errors = new List<string>();
        EtcdConnection.Validate(Section, options.ConnectionString, options.KeyPrefix, errors);

        if (options.RequestTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{Section}:RequestTimeout must be positive (was {options.RequestTimeout}).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
