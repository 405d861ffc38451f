using System.Numerics;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>
/// Checks <see cref="FasterStorageOptions"/> at silo start and fails with a message naming the bad setting.
/// </summary>
internal sealed class FasterStorageOptionsValidator(FasterStorageOptions options, string providerName) : IConfigurationValidator
{
    /// <inheritdoc />
    public void ValidateConfiguration()
    {
        var errors = Validate(options, providerName);
        if (errors.Count > 0)
        {
            throw new OrleansConfigurationException(
                $"Invalid options for FASTER grain storage '{providerName}': {string.Join("; ", errors)}");
        }
    }

    /// <summary>Returns one message per invalid setting; empty when the options are valid.</summary>
    internal static List<string> Validate(FasterStorageOptions options, string providerName)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(providerName) || providerName.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
        {
            errors.Add($"the provider name '{providerName}' must be a valid directory name");
        }

        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            errors.Add("Storage:DataDirectory must be set");
        }

        if (options.MemorySizeBytes < FasterStorageOptions.MinMemorySizeBytes)
        {
            errors.Add($"Storage:MemorySizeBytes must be at least {FasterStorageOptions.MinMemorySizeBytes} (16 MiB), was {options.MemorySizeBytes}");
        }

        if (options.IndexBuckets < 64 || !BitOperations.IsPow2(options.IndexBuckets))
        {
            errors.Add($"Storage:IndexBuckets must be a power of two of at least 64, was {options.IndexBuckets}");
        }

        if (options.CommitInterval < TimeSpan.Zero)
        {
            errors.Add($"Storage:CommitInterval must not be negative, was {options.CommitInterval}");
        }

        if (options.IndexCheckpointInterval <= TimeSpan.Zero)
        {
            errors.Add($"Storage:IndexCheckpointInterval must be positive, was {options.IndexCheckpointInterval}");
        }

        return errors;
    }
}
