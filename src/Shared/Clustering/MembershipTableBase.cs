namespace Orleans.Mqtt.Clustering;

/// <summary>
/// What the etcd and Consul membership tables share: the pre-cancellation methods of <see cref="IMembershipTable"/>
/// forward to the cancellable ones, and insert and update are one conditional write of a row with the table version.
/// </summary>
internal abstract class MembershipTableBase : IMembershipTable
{
    public Task InitializeMembershipTable(bool tryInitTableVersion) =>
        InitializeMembershipTableAsync(tryInitTableVersion, CancellationToken.None);

    public abstract Task InitializeMembershipTableAsync(bool tryInitTableVersion, CancellationToken cancellationToken);

    public Task DeleteMembershipTableEntries(string clusterId) => DeleteMembershipTableEntriesAsync(clusterId, CancellationToken.None);

    public abstract Task DeleteMembershipTableEntriesAsync(string clusterId, CancellationToken cancellationToken);

    public Task CleanupDefunctSiloEntries(DateTimeOffset beforeDate) => CleanupDefunctSiloEntriesAsync(beforeDate, CancellationToken.None);

    public abstract Task CleanupDefunctSiloEntriesAsync(DateTimeOffset beforeDate, CancellationToken cancellationToken);

    public Task<MembershipTableData> ReadRow(SiloAddress key) => ReadRowAsync(key, CancellationToken.None);

    public abstract Task<MembershipTableData> ReadRowAsync(SiloAddress key, CancellationToken cancellationToken);

    public Task<MembershipTableData> ReadAll() => ReadAllAsync(CancellationToken.None);

    public abstract Task<MembershipTableData> ReadAllAsync(CancellationToken cancellationToken);

    public Task<bool> InsertRow(MembershipEntry entry, TableVersion tableVersion) =>
        InsertRowAsync(entry, tableVersion, CancellationToken.None);

    public Task<bool> InsertRowAsync(MembershipEntry entry, TableVersion tableVersion, CancellationToken cancellationToken) =>
        WriteRowAsync(entry, rowEtag: null, tableVersion, cancellationToken);

    public Task<bool> UpdateRow(MembershipEntry entry, string etag, TableVersion tableVersion) =>
        UpdateRowAsync(entry, etag, tableVersion, CancellationToken.None);

    public Task<bool> UpdateRowAsync(MembershipEntry entry, string etag, TableVersion tableVersion, CancellationToken cancellationToken) =>
        WriteRowAsync(entry, etag, tableVersion, cancellationToken);

    public Task UpdateIAmAlive(MembershipEntry entry) => UpdateIAmAliveAsync(entry, CancellationToken.None);

    public abstract Task UpdateIAmAliveAsync(MembershipEntry entry, CancellationToken cancellationToken);

    /// <summary>
    /// Writes the row and <paramref name="tableVersion"/> together, or nothing (false) when the stored table version or
    /// the row changed meanwhile; with <paramref name="rowEtag"/> null the row must not exist yet.
    /// </summary>
    protected abstract Task<bool> WriteRowAsync(MembershipEntry entry, string? rowEtag, TableVersion tableVersion, CancellationToken cancellationToken);
}
