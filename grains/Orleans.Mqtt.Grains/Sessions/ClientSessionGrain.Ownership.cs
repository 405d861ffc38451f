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

    private async Task ReleaseOwnerAsync()
    {
        if (S.OwnerRevision == 0)
        {
            return;
        }

        try
        {
            var release = await ownership.ReleaseAsync(ClientId, S.OwnerRevision);
            S.OwnerRevision = release.Committed ? 0 : release.Revision;
        }
        catch (Exception ex)
        {
            // The record hangs on the gateway's lease; at worst it names a connection that is gone.
            LogReleaseFailed(logger, ex, ClientId);
        }
    }

    /// <summary>
    /// A session rebuilt from its routes (a clean session's state lived only in the memory of its dead silo) or recovered
    /// from a copy saved before its last ownership commit does not know the revision of the record that names its live
    /// connection. Taken from the record, so that the connection's end releases it and the next commit expects it;
    /// left alone, the end released nothing (revision 0) and the next CONNECT met a record naming a connection long
    /// gone. A record naming another connection is left to <see cref="CommitOwnerAsync"/>, as is a failed read.
    /// </summary>
    private async Task AdoptOwnerRecordAsync(GatewayPresence connected)
    {
        try
        {
            var (owner, revision) = await ownership.ReadAsync(ClientId);
            if (owner is not null && owner.GatewayId == connected.GatewayId && owner.ConnectionId == connected.ConnectionId && revision != S.OwnerRevision)
            {
                LogOwnerRecordAdopted(logger, ClientId, S.OwnerRevision, revision);
                S.OwnerRevision = revision;
                S.OwnerEpoch = Math.Max(S.OwnerEpoch, owner.Epoch);
            }
        }
        catch (Exception ex)
        {
            LogOwnerReadFailed(logger, ex, ClientId);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Session of client {ClientId} took its ownership record's revision {Revision} (it knew {Known}): the record names its live connection")]
    private static partial void LogOwnerRecordAdopted(ILogger logger, string clientId, long known, long revision);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading the ownership record of client {ClientId} failed; its next commit finds the revision")]
    private static partial void LogOwnerReadFailed(ILogger logger, Exception ex, string clientId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ownership record of client {ClientId} names gateway {GatewayId} connection {ConnectionId} (epoch {Epoch}); taking over")]
    private static partial void LogForeignOwner(ILogger logger, string clientId, string gatewayId, long connectionId, long epoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Releasing the ownership record of client {ClientId} failed")]
    private static partial void LogReleaseFailed(ILogger logger, Exception ex, string clientId);
}
