using Microsoft.Extensions.Options;
using Orleans.Mqtt.Etcd;

namespace Orleans.Mqtt.Ownership.Etcd;

/// <summary>Rejects etcd ownership options that cannot work, naming the setting.</summary>
public sealed class EtcdOwnershipOptionsValidator : IValidateOptions<EtcdOwnershipOptions>
{
    /// <summary>The highest <see cref="EtcdOwnershipOptions.MaxBatchOperations"/> accepted, for servers with a raised <c>--max-txn-ops</c>.</summary>
    public const int MaxBatchOperationsLimit = 10_000;

    private const string Section = EtcdOwnershipOptions.SectionName;

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, EtcdOwnershipOptions options)
    {
        var errors = new List<string>();
        EtcdConnection.Validate(Section, options.ConnectionString, options.KeyPrefix, errors);

        if (string.IsNullOrWhiteSpace(options.ClusterId) || options.ClusterId.Contains('/', StringComparison.Ordinal))
        {
            errors.Add($"{Section}:ClusterId must be set, without '/' (or set Orleans:ClusterId) (was '{options.ClusterId}').");
        }

        if (options.MaxBatchOperations < 1 || options.MaxBatchOperations > MaxBatchOperationsLimit)
        {
            errors.Add($"{Section}:MaxBatchOperations must be 1..{EtcdOwnershipOptions.EtcdDefaultMaxTxnOps} with etcd's default --max-txn-ops, "
                + $"at most {MaxBatchOperationsLimit} on a server configured higher (was {options.MaxBatchOperations}).");
        }

        if (options.MaxBatchBytes < 1024)
        {
            errors.Add($"{Section}:MaxBatchBytes must be at least 1024 and below etcd's --max-request-bytes (1.5 MiB by default) (was {options.MaxBatchBytes}).");
        }

        if (options.MaxBatchDelay < TimeSpan.Zero || options.MaxBatchDelay > TimeSpan.FromSeconds(1))
        {
            errors.Add($"{Section}:MaxBatchDelay must be between 0 and 1 s (was {options.MaxBatchDelay}).");
        }

        if (options.RequestTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{Section}:RequestTimeout must be positive (was {options.RequestTimeout}).");
        }

        if (options.LeaseTtl < TimeSpan.FromSeconds(1) || options.LeaseTtl.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            errors.Add($"{Section}:LeaseTtl must be a whole number of seconds, at least 1 s (was {options.LeaseTtl}).");
        }

        if (options.CompactionInterval != TimeSpan.Zero && options.CompactionInterval < TimeSpan.FromSeconds(1))
        {
            errors.Add($"{Section}:CompactionInterval must be 0 (off) or at least 1 s (was {options.CompactionInterval}).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
