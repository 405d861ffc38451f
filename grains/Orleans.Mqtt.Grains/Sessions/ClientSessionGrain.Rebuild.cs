using Microsoft.Extensions.Logging;

namespace Orleans.Mqtt.Grains;

// An activation that finds the route replica newer than its stored state rebuilds the session from it.
internal sealed partial class ClientSessionGrain
{
    /// <summary>
    /// The replica is written before anything is acknowledged, so it knows at least what this grain last made
    /// routable. A newer or equal copy there means this activation lost state: take the subscriptions and the live
    /// connection from it. A persistent session's state was recovered from a replica silo's copy before this
    /// (<see cref="RecoverAsync"/>), which leaves the versions equal; what is rebuilt here is a clean session kept
    /// only in memory, or a session handed over at a graceful shutdown. A record this silo's
    /// storage holds but that is older than the routes is a stale copy: another silo has been the session's home
    /// since (this one crashed, or was away, while the session went on elsewhere). What it queued may have been
    /// delivered since, or belong to a session that ended in between, so it is dropped with the rest.
    /// </summary>
    /// <returns>Whether a stale copy was dropped.</returns>
    private bool RestoreFromReplica(ClientRoutes replicated)
    {
        var lostState = replicated.Version > S.RouteVersion;
        var stale = lostState && S.RouteVersion > 0;
        if (stale)
        {
            LogStaleCopyDropped(logger, ClientId, S.RouteVersion, replicated.Version, replicated.Home, S.Queue.Count, S.Inflight.Count);
            metrics.SessionsStaleCopiesDropped.Add(1, new KeyValuePair<string, object?>("where", "activation"));
            S.Queue.Clear();
            S.Inflight.Clear();
            S.InboundQos2.Clear();
            S.Will = null;
            S.WillDelayInterval = 0;
            S.PendingWill = null;
            S.WillDueAtUtc = null;
        }

        S.RouteVersion = replicated.Version;
        _presence = replicated.Presence;
        if (lostState)
        {
            S.Subscriptions.Clear();
            foreach (var subscription in replicated.Subscriptions)
            {
                S.Subscriptions[subscription.Filter] = subscription;
            }

            S.SessionExpiryInterval = replicated.SessionExpiryInterval;
            _hasSession = true;
            if (_presence is null)
            {
                S.DisconnectedAtUtc ??= UtcNow;
            }

            LogRestoredFromReplica(logger, ClientId, replicated.Subscriptions.Length, _presence is not null);
        }

        if (_presence is not null)
        {
            KeepWhileConnected();
        }

        return stale;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session of client {ClientId} rebuilt from the route replica ({Subscriptions} subscriptions, connected: {Connected}); its stored state was lost")]
    private static partial void LogRestoredFromReplica(ILogger logger, string clientId, int subscriptions, bool connected);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stored copy of client {ClientId}'s session on this silo is stale (route version {StoredVersion}, the routes have {ReplicatedVersion} with home {Home}): its {Queued} queued and {Inflight} in-flight messages and its will are dropped")]
    private static partial void LogStaleCopyDropped(ILogger logger, string clientId, long storedVersion, long replicatedVersion, string? home, int queued, int inflight);
}
