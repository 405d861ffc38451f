using Microsoft.Extensions.Logging;
using Orleans.Runtime.Placement;
using Orleans.Storage;

namespace Orleans.Mqtt.Grains;

// Hand-over to another silo at a graceful shutdown (Orleans activation migration).
internal sealed partial class ClientSessionGrain
{
    /// <summary>
    /// A graceful silo shutdown hands the session over to another silo with everything in it (queue, in-flight
    /// messages, the live connection), because the stored state lives on this silo's disk. The new silo stores it and
    /// becomes its home, with a newer route version. The record here stays: should the hand-over fail, it still holds
    /// the session, and this silo is still its home when it comes back. Once the new home has taken over, the record
    /// is a stale copy, which this silo drops when it starts again (<see cref="StaleSessionCopies"/>) and an
    /// activation here would drop too.
    /// </summary>
    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        metrics.SessionsInMemory.Add(-1);
        if (reason.ReasonCode == DeactivationReasonCode.ShuttingDown && (_hasSession || _presence is not null) && handoverTargets.Next() is { } target)
        {
            RequestContext.Set(IPlacementDirector.PlacementHintKey, target);
            this.MigrateOnIdle();
        }

        return Task.CompletedTask;
    }

    public void OnDehydrate(IDehydrationContext dehydrationContext)
    {
        dehydrationContext.TryAddValue("presence", _presence);
        dehydrationContext.TryAddValue("session", new MigratedSession(_hasSession));
    }

    public void OnRehydrate(IRehydrationContext rehydrationContext)
    {
        _migratedIn = true;
        if (rehydrationContext.TryGetValue("presence", out GatewayPresence? presence))
        {
            _presence = presence;
        }

        if (rehydrationContext.TryGetValue("session", out MigratedSession? session))
        {
            _hasSession = session.HasSession;
        }
    }

    /// <summary>
    /// The state arrived with the migration, but this silo's storage has its own record (or none): take that record's
    /// version and store the migrated state over it, so this silo's disk holds the session from now on.
    /// </summary>
    private async Task AdoptMigratedStateAsync()
    {
        var migrated = state.State;
        for (var attempt = 0; ; attempt++)
        {
            await state.ReadStateAsync();
            state.State = migrated;
            try
            {
                if (Persistent && _hasSession)
                {
                    await state.WriteStateAsync();
                }

                break;
            }
            catch (InconsistentStateException) when (attempt == 0)
            {
                // The record changed between the read and the write: this silo, just started, dropped its stale copy.
            }
        }

        if (_presence is not null)
        {
            KeepWhileConnected();
        }

        LogMigratedIn(logger, ClientId, S.Queue.Count, S.Inflight.Count, _presence is not null);
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Session of client {ClientId} handed over to this silo ({Queued} queued, {Inflight} in flight, connected: {Connected})")]
    private static partial void LogMigratedIn(ILogger logger, string clientId, int queued, int inflight, bool connected);
}
