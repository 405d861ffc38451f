namespace Orleans.Mqtt.Ownership;

/// <summary>
/// Session ownership kept in the process: the store of the single-node broker, where one process holds every
/// session. Same compare-and-swap contract as the etcd store; revisions come from one counter for the whole store.
/// </summary>
public sealed class InMemorySessionOwnershipStore : ISessionOwnershipStore
{
    private readonly Dictionary<string, (SessionOwner Owner, long Revision)> _records = new(StringComparer.Ordinal);
    private long _revision;

    /// <summary>Records held.</summary>
    public int Count
    {
        get
        {
            lock (_records)
            {
                return _records.Count;
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<OwnershipCommit> CommitAsync(string clientId, SessionOwner owner, long expectedRevision, CancellationToken cancellationToken = default)
    {
        lock (_records)
        {
            var found = _records.TryGetValue(clientId, out var current) ? current.Revision : 0;
            if (found != expectedRevision)
            {
                return ValueTask.FromResult(new OwnershipCommit(false, found, found == 0 ? null : current.Owner));
            }

            var revision = ++_revision;
            _records[clientId] = (owner, revision);
            return ValueTask.FromResult(new OwnershipCommit(true, revision, owner));
        }
    }

    /// <inheritdoc />
    public ValueTask<OwnershipCommit> ReleaseAsync(string clientId, long expectedRevision, CancellationToken cancellationToken = default)
    {
        lock (_records)
        {
            var found = _records.TryGetValue(clientId, out var current) ? current.Revision : 0;
            if (found != expectedRevision || found == 0)
            {
                return ValueTask.FromResult(new OwnershipCommit(false, found, found == 0 ? null : current.Owner));
            }

            _records.Remove(clientId);
            return ValueTask.FromResult(new OwnershipCommit(true, 0, null));
        }
    }

    /// <inheritdoc />
    public ValueTask<(SessionOwner? Owner, long Revision)> ReadAsync(string clientId, CancellationToken cancellationToken = default)
    {
        lock (_records)
        {
            return ValueTask.FromResult<(SessionOwner?, long)>(_records.TryGetValue(clientId, out var current) ? (current.Owner, current.Revision) : (null, 0));
        }
    }
}
