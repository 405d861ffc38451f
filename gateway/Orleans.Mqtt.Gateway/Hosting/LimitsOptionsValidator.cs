namespace Orleans.Mqtt.Gateway;

/// <summary>The checks of <c>Mqtt:Limits:*</c> and <c>Mqtt:Overload:*</c>, run by <see cref="MqttGatewayOptionsValidator"/>.</summary>
internal static class LimitsOptionsValidator
{
    public static void Validate(List<string> errors, LimitsOptions limits, OverloadOptions overload)
    {
        CheckRate(errors, "Mqtt:Limits:MessagesPerSecond", limits.MessagesPerSecond, "Mqtt:Limits:MessageBurst", limits.MessageBurst);
        CheckRate(errors, "Mqtt:Limits:BytesPerSecond", limits.BytesPerSecond, "Mqtt:Limits:ByteBurst", limits.ByteBurst);
        CheckRate(errors, "Mqtt:Limits:ConnectionsPerSecond", limits.ConnectionsPerSecond, "Mqtt:Limits:ConnectionBurst", limits.ConnectionBurst);
        if (limits.MaxSubscriptionsPerClient < 0)
        {
            errors.Add($"Mqtt:Limits:MaxSubscriptionsPerClient must be 0 (no limit) or more (was {limits.MaxSubscriptionsPerClient}).");
        }

        if (limits.MaxTopicLength is < 1 or > ushort.MaxValue)
        {
            errors.Add($"Mqtt:Limits:MaxTopicLength must be between 1 and 65535 (was {limits.MaxTopicLength}).");
        }

        if (limits.MaxTopicLevels < 0)
        {
            errors.Add($"Mqtt:Limits:MaxTopicLevels must be 0 (no limit) or more (was {limits.MaxTopicLevels}).");
        }

        if (overload.MaxThreadPoolQueue < 0)
        {
            errors.Add($"Mqtt:Overload:MaxThreadPoolQueue must be 0 (not checked) or more (was {overload.MaxThreadPoolQueue}).");
        }

        if (overload.MemoryBudgetBytes < 0)
        {
            errors.Add($"Mqtt:Overload:MemoryBudgetBytes must be 0 (90 % of the GC's available memory) or more (was {overload.MemoryBudgetBytes}).");
        }

        if (overload.SampleInterval <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:Overload:SampleInterval must be positive (was {overload.SampleInterval}).");
        }
    }

    private static void CheckRate(List<string> errors, string rateKey, double rate, string burstKey, double burst)
    {
        if (!double.IsFinite(rate) || rate < 0)
        {
            errors.Add($"{rateKey} must be 0 (no limit) or a positive number (was {rate}).");
        }

        if (!double.IsFinite(burst) || burst < 0)
        {
            errors.Add($"{burstKey} must be 0 (one second's worth of {rateKey}) or a positive number (was {burst}).");
        }
        else if (rate > 0 && burst > 0 && burst < 1)
        {
            errors.Add($"{burstKey} must be at least 1 when {rateKey} is set (was {burst}): a smaller bucket never holds one token.");
        }
    }
}
