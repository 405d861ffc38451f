using System.Globalization;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Mqtt.Etcd;
using static Etcdserverpb.Compare.Types;

namespace Orleans.Mqtt.Clustering.Etcd;

/// <summary>
/// The Orleans membership table in etcd. One cluster id is one folder: <c>{prefix}/{clusterId}/version</c> holds the
/// table version as decimal text, <c>{prefix}/{clusterId}/members/{silo}</c> one JSON row per silo. Etags are etcd mod
/// revisions (of the version key and of the row), so every write makes a new etag and a stale one never matches.
/// Each insert and update is one etcd transaction that compares both and writes both, or writes nothing.
/// </summary>
internal sealed class EtcdMembershipTable : MembershipTableBase, IDisposable
{
    private const int IAmAliveAttempts = 10;
    private readonly EtcdClient _client;
    private readonly string _prefix;
    private readonly string _clusterFolder;
    private readonly ByteString _versionKey;
    private readonly string _membersFolder;
    private readonly TimeSpan _requestTimeout;
    private readonly ILogger<EtcdMembershipTable> _logger;

    public EtcdMembershipTable(
        IOptions<EtcdClusteringOptions> options,
        IOptions<ClusterOptions> clusterOptions,
        ILogger<EtcdMembershipTable> logger)
    {
        var etcd = options.Value;
        _logger = logger;
        _requestTimeout = etcd.RequestTimeout;
        _prefix = etcd.KeyPrefix.TrimEnd('/');
        _clusterFolder = ClusterFolder(clusterOptions.Value.ClusterId);
        _versionKey = ByteString.CopyFromUtf8(_clusterFolder + "version");
        _membersFolder = _clusterFolder + "members/";
        _client = EtcdConnection.CreateClient(etcd.ConnectionString);
    }

    public override async Task InitializeMembershipTableAsync(bool tryInitTableVersion, CancellationToken cancellationToken)
    {
        if (tryInitTableVersion)
        {
            // Create the version key at 0 unless it is there: a second silo starting must not reset the version.
            var txn = new TxnRequest();
            txn.Compare.Add(new Compare { Key = _versionKey, Target = CompareTarget.Create, Result = CompareResult.Equal, CreateRevision = 0 });
            txn.Success.Add(Put(_versionKey, ByteString.CopyFromUtf8("0")));
            var response = await _client.TransactionAsync(txn, deadline: Deadline(), cancellationToken: cancellationToken);
            MembershipTableLog.Initialized(_logger, "Etcd", _clusterFolder, response.Succeeded);
        }
    }

    public override async Task DeleteMembershipTableEntriesAsync(string clusterId, CancellationToken cancellationToken)
    {
        await _client.DeleteRangeAsync(ClusterFolder(clusterId), deadline: Deadline(), cancellationToken: cancellationToken);
    }

    public override async Task CleanupDefunctSiloEntriesAsync(DateTimeOffset beforeDate, CancellationToken cancellationToken)
    {
        var (_, rows) = await ReadClusterAsync(cancellationToken);
        var deleted = 0;
        foreach (var row in rows)
        {
            if (!MembershipRules.IsDefunct(row.Entry, beforeDate))
            {
                continue;
            }

            // Only the row as it was read: a row that changed meanwhile is no longer known to be defunct.
            var txn = new TxnRequest();
            txn.Compare.Add(ModRevisionIs(row.Key, row.ModRevision));
            txn.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = row.Key } });
            if ((await _client.TransactionAsync(txn, deadline: Deadline(), cancellationToken: cancellationToken)).Succeeded)
            {
                deleted++;
            }
        }

        MembershipTableLog.CleanedUp(_logger, deleted, _clusterFolder, beforeDate);
    }

    public override async Task<MembershipTableData> ReadRowAsync(SiloAddress key, CancellationToken cancellationToken)
    {
        // Two reads in one transaction see the same revision: the row and the version are read atomically.
        var txn = new TxnRequest();
        txn.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = _versionKey } });
        txn.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = MemberKey(key) } });
        var response = await _client.TransactionAsync(txn, deadline: Deadline(), cancellationToken: cancellationToken);
        var version = ToTableVersion(response.Responses[0].ResponseRange.Kvs);
        var rows = response.Responses[1].ResponseRange.Kvs;
        return rows.Count == 0
            ? new MembershipTableData(version)
            : new MembershipTableData(Tuple.Create(MembershipEntryCodec.Deserialize(rows[0].Value.Span), Etag(rows[0].ModRevision)), version);
    }

    public override async Task<MembershipTableData> ReadAllAsync(CancellationToken cancellationToken)
    {
        var (version, rows) = await ReadClusterAsync(cancellationToken);
        var members = new List<Tuple<MembershipEntry, string>>(rows.Count);
        foreach (var row in rows)
        {
            members.Add(Tuple.Create(row.Entry, Etag(row.ModRevision)));
        }

        return new MembershipTableData(members, version);
    }

    public override async Task UpdateIAmAliveAsync(MembershipEntry entry, CancellationToken cancellationToken)
    {
        var key = MemberKey(entry.SiloAddress);
        for (var attempt = 1; attempt <= IAmAliveAttempts; attempt++)
        {
            var current = await _client.GetAsync(new RangeRequest { Key = key }, deadline: Deadline(), cancellationToken: cancellationToken);
            if (current.Kvs.Count == 0)
            {
                throw new InvalidOperationException($"There is no membership row for silo {entry.SiloAddress} in {_clusterFolder}.");
            }

            var row = current.Kvs[0];
            var stored = MembershipEntryCodec.Deserialize(row.Value.Span);
            stored.IAmAliveTime = entry.IAmAliveTime;

            // The row only, never the version; conditional on the row as read so a concurrent vote is not lost.
            var txn = new TxnRequest();
            txn.Compare.Add(ModRevisionIs(key, row.ModRevision));
            txn.Success.Add(Put(key, ByteString.CopyFrom(MembershipEntryCodec.Serialize(stored))));
            if ((await _client.TransactionAsync(txn, deadline: Deadline(), cancellationToken: cancellationToken)).Succeeded)
            {
                return;
            }

            MembershipTableLog.IAmAliveConflict(_logger, entry.SiloAddress, attempt);
        }

        throw new InvalidOperationException(
            $"The membership row of silo {entry.SiloAddress} kept changing during {IAmAliveAttempts} attempts to update its I-am-alive time.");
    }

    public void Dispose() => _client.Dispose();

    protected override async Task<bool> WriteRowAsync(MembershipEntry entry, string? rowEtag, TableVersion tableVersion, CancellationToken cancellationToken)
    {
        if (!TryParseRevision(tableVersion.VersionEtag, out var versionRevision))
        {
            MembershipTableLog.BadEtag(_logger, "Etcd", "version", tableVersion.VersionEtag);
            return false;
        }

        var key = MemberKey(entry.SiloAddress);
        var txn = new TxnRequest();
        txn.Compare.Add(ModRevisionIs(_versionKey, versionRevision));
        if (versionRevision > 0)
        {
            // The new version must follow the one the caller read, as well as the read being the latest.
            txn.Compare.Add(new Compare
            {
                Key = _versionKey,
                Target = CompareTarget.Value,
                Result = CompareResult.Equal,
                Value = ByteString.CopyFromUtf8((tableVersion.Version - 1).ToString(CultureInfo.InvariantCulture)),
            });
        }

        if (rowEtag is null)
        {
            txn.Compare.Add(new Compare { Key = key, Target = CompareTarget.Create, Result = CompareResult.Equal, CreateRevision = 0 });
        }
        else
        {
            if (!TryParseRevision(rowEtag, out var rowRevision) || rowRevision == 0)
            {
                MembershipTableLog.BadEtag(_logger, "Etcd", "row", rowEtag);
                return false;
            }

            txn.Compare.Add(ModRevisionIs(key, rowRevision));
        }

        txn.Success.Add(Put(_versionKey, ByteString.CopyFromUtf8(tableVersion.Version.ToString(CultureInfo.InvariantCulture))));
        txn.Success.Add(Put(key, ByteString.CopyFrom(MembershipEntryCodec.Serialize(entry))));
        var response = await _client.TransactionAsync(txn, deadline: Deadline(), cancellationToken: cancellationToken);
        if (!response.Succeeded)
        {
            MembershipTableLog.WriteConflict(_logger, "Etcd", rowEtag is null ? "insert" : "update", entry.SiloAddress, tableVersion.Version);
        }

        return response.Succeeded;
    }

    private async Task<(TableVersion Version, List<StoredRow> Rows)> ReadClusterAsync(CancellationToken cancellationToken)
    {
        // The version key and the members' folder, read in one transaction, so at one revision: consistent. Not the
        // whole cluster folder: the session ownership records are kept there too (owners/), one per session, and with
        // them the answer grew with the sessions until it passed gRPC's 4 MiB limit (about 50,000 sessions).
        var members = ByteString.CopyFromUtf8(_membersFolder);
        var txn = new TxnRequest();
        txn.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = _versionKey } });
        txn.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = members, RangeEnd = EtcdClient.GetRangeEnd(members) } });
        var response = await _client.TransactionAsync(txn, deadline: Deadline(), cancellationToken: cancellationToken);
        var version = ToTableVersion(response.Responses[0].ResponseRange.Kvs);
        var kvs = response.Responses[1].ResponseRange.Kvs;
        var rows = new List<StoredRow>(kvs.Count);
        foreach (var kv in kvs)
        {
            rows.Add(new StoredRow(kv.Key, kv.ModRevision, MembershipEntryCodec.Deserialize(kv.Value.Span)));
        }

        return (version, rows);
    }

    private static TableVersion ToTableVersion(IList<Mvccpb.KeyValue> kvs)
    {
        // No version key yet reads as version 0 with etag 0, which a transaction matches as "key absent".
        if (kvs.Count == 0)
        {
            return new TableVersion(0, "0");
        }

        var kv = kvs[0];
        return new TableVersion(int.Parse(kv.Value.ToStringUtf8(), NumberStyles.None, CultureInfo.InvariantCulture), Etag(kv.ModRevision));
    }

    private string ClusterFolder(string clusterId) => $"{_prefix}/{clusterId}/";

    private ByteString MemberKey(SiloAddress silo) => ByteString.CopyFromUtf8(_membersFolder + MembershipEntryCodec.RowName(silo));

    private DateTime Deadline() => DateTime.UtcNow + _requestTimeout;

    private static RequestOp Put(ByteString key, ByteString value) => new() { RequestPut = new PutRequest { Key = key, Value = value } };

    private static Compare ModRevisionIs(ByteString key, long revision) =>
        new() { Key = key, Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = revision };

    private static string Etag(long revision) => revision.ToString(CultureInfo.InvariantCulture);

    private static bool TryParseRevision(string? etag, out long revision) =>
        long.TryParse(etag, NumberStyles.None, CultureInfo.InvariantCulture, out revision);

    private readonly record struct StoredRow(ByteString Key, long ModRevision, MembershipEntry Entry);
}
