using Microsoft.Extensions.Logging;

namespace Orleans.Mqtt.Grains;

// The will: published when the connection ends abnormally, after its delay, or when the session ends.
internal sealed partial class ClientSessionGrain
{
    private void CancelPendingWill()
    {
        S.PendingWill = null;
        S.WillDueAtUtc = null;
        _willTimer?.Dispose();
        _willTimer = null;
    }

    private void ArmWillTimer()
    {
        _willTimer?.Dispose();
        var due = S.WillDueAtUtc!.Value - UtcNow;
        _willTimer = this.RegisterGrainTimer(
            ExpireIfDue,
            new GrainTimerCreationOptions { DueTime = due < TimeSpan.Zero ? TimeSpan.Zero : due, Period = Timeout.InfiniteTimeSpan, KeepAlive = true });
    }

    private void PublishPendingWill() => PublishWill(TakePendingWill());

    private MqttMessage TakePendingWill()
    {
        var will = Stamp(S.PendingWill!);
        CancelPendingWill();
        return will;
    }

    private void PublishWill(MqttMessage will)
    {
        // Not awaited: the shard may hand the will back to this very session (a client subscribed to its own will
        // topic), which could not run while this call waits.
        var shard = GrainFactory.GetGrain<ITopicShardGrain>(Topics.MqttTopic.ShardOf(will.Topic, options.Value.TopicShards));
        shard.Publish(will).ContinueWith(
            t => LogWillPublishFailed(logger, t.Exception!, ClientId, will.Topic),
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted,
            TaskScheduler.Current);
    }

    /// <summary>A will's Message Expiry Interval counts from when it is published [MQTT-3.1.3-14].</summary>
    private MqttMessage Stamp(MqttMessage will) =>
        will.Properties is { MessageExpiryInterval: > 0 } p ? will with { ExpiresAtUtc = UtcNow.AddSeconds(p.MessageExpiryInterval) } : will;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publishing the will of client {ClientId} to {Topic} failed")]
    private static partial void LogWillPublishFailed(ILogger logger, Exception ex, string clientId, string topic);
}
