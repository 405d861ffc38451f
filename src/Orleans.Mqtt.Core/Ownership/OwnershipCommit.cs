namespace Orleans.Mqtt.Ownership;

/// <summary>The outcome of a compare-and-swap on one client id's owner record.</summary>
/// <param name="Committed">True when the record was written (or deleted) because its revision was the expected one.</param>
/// <param name="Revision">After a commit, the record's new revision (0 after a delete); after a conflict, the revision found (0: no record).</param>
/// <param name="Current">After a conflict, the owner found (null: no record).</param>
public readonly record struct OwnershipCommit(bool Committed, long Revision, SessionOwner? Current);
