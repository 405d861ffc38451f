using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

// The client id's ownership record (one owner cluster-wide), committed before CONNACK.
internal sealed partial class ClientSessionGrain
{
    /// <summary>
    /// Commits this connection as the client id's owner (compare-and-swap on the record's revision) before CONNACK.
    /// A conflict means the record changed behind this activation's back (a previous activation wrote it, or the
    /// gateway's lease expired): the connection it names is told to go (0x8E), unless it is <paramref name="replaced"/>,
    /// which the takeover already told, and the commit is retried on what was found.
    /// </summary>
    private async Task CommitOwnerAsync(GatewayPresence presence, GatewayPresence? replaced = null)
    {
        using var span = MqttTracing.StartChild(MqttTracing.Operations.OwnershipCommit, ClientId);
        for (var attempt = 0; ; attempt++)
        {
            span?.SetTag(MqttTracing.Attributes.Attempts, attempt + 1);
            var owner = new SessionOwner(presence.GatewayId, presence.ConnectionId, S.OwnerEpoch + 1, presence.LeaseId);
            var commit = await ownership.CommitAsync(ClientId, owner, S.OwnerRevision);
            if (commit.Committed)
            {
                S.OwnerRevision = commit.Revision;
                S.OwnerEpoch = owner.Epoch;
                return;
            }

            S.OwnerRevision = commit.Revision;
            S.OwnerEpoch = Math.Max(S.OwnerEpoch, commit.Current?.Epoch ?? 0);
            if (commit.Current is { } other && (other.GatewayId != presence.GatewayId || other.ConnectionId != presence.ConnectionId))
            {
                await EvictAsync(other, alreadyTold: replaced is { } r && r.GatewayId == other.GatewayId && r.ConnectionId == other.ConnectionId);
            }

            if (attempt == 5)
            {
                throw new InvalidOperationException($"The ownership record of client {ClientId} keeps changing; connect refused.");
            }
        }
    }

    private async Task EvictAsync(SessionOwner other, bool alreadyTold)
    {
        LogForeignOwner(logger, ClientId, other.GatewayId, other.ConnectionId, other.Epoch);
        if (alreadyTold || routeTable.Get(ClientId)?.Presence is not { } p || p.GatewayId != other.GatewayId || p.ConnectionId != other.ConnectionId)
        {
            return;
        }

        await TellTakenOverAsync(p);
    }

    /// <summary>
    /// Deletes the record of the connection that ended. The revision this activation knows can be behind the record
    /// that names <paramref name="ending"/>: a clean session rebuilt from its routes after its silo died knows none (its
    /// state lived only in that silo's memory), a persistent one recovered from a copy saved before its last ownership
    /// commit knows an older one. The refused delete returns the record: when it names the connection that ended, it
    /// is deleted at the revision found. Left alone, the record would stay until the gateway's lease ends and the next
    /// CONNECT would meet a connection long gone. A record naming another connection is left alone.
    /// </summary>
    private async Task ReleaseOwnerAsync(GatewayPresence ending)
    {
        try
        {
            var release = await ownership.ReleaseAsync(ClientId, S.OwnerRevision);
            if (!release.Committed && release.Current is { } current && current.GatewayId == ending.GatewayId && current.ConnectionId == ending.ConnectionId)
            {
                LogOwnerRecordBehind(logger, ClientId, S.OwnerRevision, release.Revision);
                S.OwnerEpoch = Math.Max(S.OwnerEpoch, current.Epoch);
                release = await ownership.ReleaseAsync(ClientId, release.Revision);
            }

            S.OwnerRevision = release.Committed ? 0 : release.Revision;
        }
        catch (Exception ex)
        {
            // The record hangs on the gateway's lease; at worst it names a connection that is gone.
            LogReleaseFailed(logger, ex, ClientId);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Session of client {ClientId} knew ownership revision {Known}, the record of its ended connection is at {Revision}; deleted there")]
    private static partial void LogOwnerRecordBehind(ILogger logger, string clientId, long known, long revision);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ownership record of client {ClientId} names gateway {GatewayId} connection {ConnectionId} (epoch {Epoch}); taking over")]
    private static partial void LogForeignOwner(ILogger logger, string clientId, string gatewayId, long connectionId, long epoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Releasing the ownership record of client {ClientId} failed")]
    private static partial void LogReleaseFailed(ILogger logger, Exception ex, string clientId);
}
