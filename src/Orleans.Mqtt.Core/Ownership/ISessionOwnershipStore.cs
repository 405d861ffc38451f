namespace Orleans.Mqtt.Ownership;

/// <summary>The connection that owns a client id: its gateway, the connection on that gateway and the session epoch.</summary>
/// <param name="GatewayId">The gateway holding the network connection.</param>
/// <param name="ConnectionId">The connection on that gateway.</param>
/// <param name="Epoch">Grows with every new owner of the client id.</param>
/// <param name="LeaseId">The gateway's lease the record hangs on (0: none), so a dead gateway's records expire.</param>
public sealed record SessionOwner(string GatewayId, long ConnectionId, long Epoch, long LeaseId = 0);

/// <summary>The outcome of a compare-and-swap on one client id's owner record.</summary>
/// <param name="Committed">True when the record was written (or deleted) because its revision was the expected one.</param>
/// <param name="Revision">After a commit, the record's new revision (0 after a delete); after a conflict, the revision found (0: no record).</param>
/// <param name="Current">After a conflict, the owner found (null: no record).</param>
public readonly record struct OwnershipCommit(bool Committed, long Revision, SessionOwner? Current);

/// <summary>
/// Where session ownership is committed: client id → owner, written only by a compare-and-swap on the record's
/// revision, so two owners of one client id cannot both be committed. Implementations may batch many commits into
/// one round trip; each commit completes when it is durable.
/// </summary>
public interface ISessionOwnershipStore
{
    /// <summary>Writes <paramref name="owner"/> when the record's revision is <paramref name="expectedRevision"/> (0: no record yet).</summary>
    ValueTask<OwnershipCommit> CommitAsync(string clientId, SessionOwner owner, long expectedRevision, CancellationToken cancellationToken = default);

    /// <summary>Deletes the record when its revision is <paramref name="expectedRevision"/>.</summary>
    ValueTask<OwnershipCommit> ReleaseAsync(string clientId, long expectedRevision, CancellationToken cancellationToken = default);

    /// <summary>Reads the record: the owner (null: none) and its revision (0: none).</summary>
    ValueTask<(SessionOwner? Owner, long Revision)> ReadAsync(string clientId, CancellationToken cancellationToken = default);
}
