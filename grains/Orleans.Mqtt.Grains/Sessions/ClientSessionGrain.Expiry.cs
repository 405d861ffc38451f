using Microsoft.Extensions.Logging;

namespace Orleans.Mqtt.Grains;

// The end of a session that outlived its connection: expiry and the sweep.
internal sealed partial class ClientSessionGrain
{
    public async Task ExpireIfDue()
    {
        if (_presence is not null || !_hasSession)
        {
            return;
        }

        var changed = false;
        var expired = IsExpired();

        // A will that is due, or that the session's end sends early, goes out once the session's routes are gone
        // everywhere: whoever reacts to it finds the session's subscriptions removed.
        MqttMessage? will = null;
        if (S.PendingWill is not null && (expired || S.WillDueAtUtc <= UtcNow))
        {
            will = TakePendingWill();
            changed = true;
        }

        if (expired)
        {
            LogSessionExpired(logger, ClientId, S.SessionExpiryInterval);
            EndSession();
            changed = true;
        }

        if (!changed)
        {
            return;
        }

        S.RouteVersion = NextVersion(S.RouteVersion);
        await SaveAndReplicateAsync();
        if (will is not null)
        {
            PublishWill(will);
        }

        if (!_hasSession)
        {
            DeactivateOnIdle();
        }
    }

    private bool IsExpired() => S.IsExpired(UtcNow);

    /// <summary>The session ends: a will still waiting for its delay is published, then everything is forgotten.</summary>
    private void EndSession()
    {
        if (S.PendingWill is not null)
        {
            PublishPendingWill();
        }

        RedispatchShared();
        ResetSession();
    }

    private void ResetSession()
    {
        S.Subscriptions.Clear();
        S.Queue.Clear();
        S.Inflight.Clear();
        S.InboundQos2.Clear();
        S.Will = null;
        S.DisconnectedAtUtc = null;
        S.DroppedMessages = 0;
        CancelPendingWill();
        _hasSession = false;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Session of client {ClientId} expired ({Interval} s after its connection ended)")]
    private static partial void LogSessionExpired(ILogger logger, string clientId, uint interval);
}
