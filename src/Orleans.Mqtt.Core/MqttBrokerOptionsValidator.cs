using Microsoft.Extensions.Options;

namespace Orleans.Mqtt;

/// <summary>Rejects broker options that cannot work, naming the setting.</summary>
public sealed class MqttBrokerOptionsValidator : IValidateOptions<MqttBrokerOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, MqttBrokerOptions options)
    {
        var errors = new List<string>();
        if (options.TopicShards is < 1 or > 1_000_000)
        {
            errors.Add($"Mqtt:TopicShards must be between 1 and 1000000 (was {options.TopicShards}).");
        }

        if (options.MaxQueuedMessages < 1)
        {
            errors.Add($"Mqtt:MaxQueuedMessages must be at least 1 (was {options.MaxQueuedMessages}).");
        }

        if (options.MaxInflightMessages is < 1 or > 65535)
        {
            errors.Add($"Mqtt:MaxInflightMessages must be between 1 and 65535 (was {options.MaxInflightMessages}).");
        }

        if (options.SessionSweepInterval <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:SessionSweepInterval must be positive (was {options.SessionSweepInterval}).");
        }

        if (options.SessionReplicas is < 1 or > 7)
        {
            errors.Add($"Mqtt:SessionReplicas must be between 1 and 7 (was {options.SessionReplicas}).");
        }

        if (options.SessionRereplicationBatch is < 1 or > 10_000)
        {
            errors.Add($"Mqtt:SessionRereplicationBatch must be between 1 and 10000 (was {options.SessionRereplicationBatch}).");
        }

        if (options.SessionRereplicationPause < TimeSpan.Zero || options.SessionRereplicationPause > TimeSpan.FromMinutes(1))
        {
            errors.Add($"Mqtt:SessionRereplicationPause must be between 0 and 1 minute (was {options.SessionRereplicationPause}).");
        }

        if (options.ReplicaRepairInterval <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:ReplicaRepairInterval must be positive (was {options.ReplicaRepairInterval}).");
        }

        if (options.ReplicaTombstoneLifetime < options.ReplicaRepairInterval * 4)
        {
            errors.Add($"Mqtt:ReplicaTombstoneLifetime must be at least four times Mqtt:ReplicaRepairInterval (was {options.ReplicaTombstoneLifetime}, interval {options.ReplicaRepairInterval}).");
        }

        if (options.GatewayTimeout < TimeSpan.FromSeconds(1))
        {
            errors.Add($"Mqtt:GatewayTimeout must be at least 1 second (was {options.GatewayTimeout}).");
        }

        if (options.TakeoverNoticeTimeout <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:TakeoverNoticeTimeout must be positive (was {options.TakeoverNoticeTimeout}).");
        }

        if (options.SysInterval < TimeSpan.Zero)
        {
            errors.Add($"Mqtt:SysInterval must be zero (off) or positive (was {options.SysInterval}).");
        }

        if (options.HeapTrimInterval < TimeSpan.Zero)
        {
            errors.Add($"Mqtt:HeapTrimInterval must be zero (off) or positive (was {options.HeapTrimInterval}).");
        }

        if (options.SessionIdleTimeout < TimeSpan.FromSeconds(2))
        {
            errors.Add($"Mqtt:SessionIdleTimeout must be at least 2 seconds (was {options.SessionIdleTimeout}).");
        }

        if (!Enum.IsDefined(options.Routes.Sharding))
        {
            errors.Add($"Mqtt:Routes:Sharding must be Off or Topic (was {options.Routes.Sharding}).");
        }

        if (options.Routes.Copies is < 1 or > 7)
        {
            errors.Add($"Mqtt:Routes:Copies must be between 1 and 7 (was {options.Routes.Copies}).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
