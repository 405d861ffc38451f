namespace Orleans.Mqtt.Ownership;

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
