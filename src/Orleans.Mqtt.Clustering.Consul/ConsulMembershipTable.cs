using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;

namespace Orleans.Mqtt.Clustering.Consul;

/// <summary>
/// The Orleans membership table in Consul's KV store, over its HTTP API. One cluster id is one folder:
/// <c>{prefix}/{clusterId}/version</c> holds the table version as decimal text, <c>{prefix}/{clusterId}/members/{silo}</c>
/// one JSON row per silo. Etags are Consul ModifyIndexes (of the version key and of the row). Each insert and update is
/// one <c>/v1/txn</c> of two check-and-set writes, so the version and the row change together or not at all.
/// </summary>
internal sealed class ConsulMembershipTable : MembershipTableBase, IDisposable
{
    private const int IAmAliveAttempts = 10;
    private readonly HttpClient _http;
    private readonly ConsulKvRequests _requests;
    private readonly string _prefix;
    private readonly string _clusterFolder;
    private readonly string _versionKey;
    private readonly string _membersFolder;
    private readonly ILogger<ConsulMembershipTable> _logger;

    public ConsulMembershipTable(
        IOptions<ConsulClusteringOptions> options,
        IOptions<ClusterOptions> clusterOptions,
        ILogger<ConsulMembershipTable> logger)
    {
        var consul = options.Value;
        _logger = logger;
        _requests = new ConsulKvRequests(consul.AclToken);
        _prefix = consul.KeyPrefix.Trim('/');
        _clusterFolder = ClusterFolder(clusterOptions.Value.ClusterId);
        _versionKey = _clusterFolder + "version";
        _membersFolder = _clusterFolder + "members/";
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(2) })
        {
            BaseAddress = consul.Address,
            Timeout = consul.RequestTimeout,
        };
    }

    public override async Task InitializeMembershipTableAsync(bool tryInitTableVersion, CancellationToken cancellationToken)
    {
        if (tryInitTableVersion)
        {
            // cas=0 creates the version key only where there is none: a second silo must not reset the version.
            var created = await SendForBooleanAsync(_requests.CasPut(_versionKey, "0"u8.ToArray(), 0), cancellationToken);
            MembershipTableLog.Initialized(_logger, "Consul", _clusterFolder, created);
        }
    }

    public override async Task DeleteMembershipTableEntriesAsync(string clusterId, CancellationToken cancellationToken)
    {
        using var request = _requests.DeleteFolder(ClusterFolder(clusterId));
        using var response = await _http.SendAsync(request, cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
    }

    public override async Task CleanupDefunctSiloEntriesAsync(DateTimeOffset beforeDate, CancellationToken cancellationToken)
    {
        var (_, rows) = await ReadClusterAsync(cancellationToken);
        var deleted = 0;
        foreach (var row in rows)
        {
            // Only the row as it was read: a row that changed meanwhile is no longer known to be defunct.
            if (MembershipRules.IsDefunct(row.Entry, beforeDate) && await SendForBooleanAsync(_requests.CasDelete(row.Key, row.ModifyIndex), cancellationToken))
            {
                deleted++;
            }
        }

        MembershipTableLog.CleanedUp(_logger, deleted, _clusterFolder, beforeDate);
    }

    public override async Task<MembershipTableData> ReadRowAsync(SiloAddress key, CancellationToken cancellationToken)
    {
        // One recursive read of the folder is one consistent view: the row and the version are read atomically.
        var (version, rows) = await ReadClusterAsync(cancellationToken);
        foreach (var row in rows)
        {
            if (row.Entry.SiloAddress.Equals(key))
            {
                return new MembershipTableData(Tuple.Create(row.Entry, Etag(row.ModifyIndex)), version);
            }
        }

        return new MembershipTableData(version);
    }

    public override async Task<MembershipTableData> ReadAllAsync(CancellationToken cancellationToken)
    {
        var (version, rows) = await ReadClusterAsync(cancellationToken);
        var members = new List<Tuple<MembershipEntry, string>>(rows.Count);
        foreach (var row in rows)
        {
            members.Add(Tuple.Create(row.Entry, Etag(row.ModifyIndex)));
        }

        return new MembershipTableData(members, version);
    }

    public override async Task UpdateIAmAliveAsync(MembershipEntry entry, CancellationToken cancellationToken)
    {
        var key = MemberKey(entry.SiloAddress);
        for (var attempt = 1; attempt <= IAmAliveAttempts; attempt++)
        {
            var (_, rows) = await ReadClusterAsync(cancellationToken);
            var found = false;
            foreach (var row in rows)
            {
                if (row.Key != key)
                {
                    continue;
                }

                found = true;
                row.Entry.IAmAliveTime = entry.IAmAliveTime;

                // The row only, never the version; conditional on the row as read so a concurrent vote is not lost.
                if (await SendForBooleanAsync(_requests.CasPut(key, MembershipEntryCodec.Serialize(row.Entry), row.ModifyIndex), cancellationToken))
                {
                    return;
                }
            }

            if (!found)
            {
                throw new InvalidOperationException($"There is no membership row for silo {entry.SiloAddress} in {_clusterFolder}.");
            }

            MembershipTableLog.IAmAliveConflict(_logger, entry.SiloAddress, attempt);
        }

        throw new InvalidOperationException(
            $"The membership row of silo {entry.SiloAddress} kept changing during {IAmAliveAttempts} attempts to update its I-am-alive time.");
    }

    public void Dispose() => _http.Dispose();

    protected override async Task<bool> WriteRowAsync(MembershipEntry entry, string? rowEtag, TableVersion tableVersion, CancellationToken cancellationToken)
    {
        if (!TryParseIndex(tableVersion.VersionEtag, out var versionIndex))
        {
            MembershipTableLog.BadEtag(_logger, "Consul", "version", tableVersion.VersionEtag);
            return false;
        }

        ulong rowIndex = 0;
        if (rowEtag is not null && (!TryParseIndex(rowEtag, out rowIndex) || rowIndex == 0))
        {
            // Index 0 would mean "only if absent": an update needs the index of the row it read.
            MembershipTableLog.BadEtag(_logger, "Consul", "row", rowEtag);
            return false;
        }

        var operations = new[]
        {
            new CasPut(_versionKey, Encoding.ASCII.GetBytes(tableVersion.Version.ToString(CultureInfo.InvariantCulture)), versionIndex),
            new CasPut(MemberKey(entry.SiloAddress), MembershipEntryCodec.Serialize(entry), rowIndex),
        };
        using var request = _requests.Transaction(operations);
        using var response = await _http.SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.Conflict)
        {
            MembershipTableLog.WriteConflict(_logger, "Consul", rowEtag is null ? "insert" : "update", entry.SiloAddress, tableVersion.Version);
            return false;
        }

        await EnsureSuccessAsync(response, cancellationToken);
        return true;
    }

    private async Task<(TableVersion Version, List<StoredRow> Rows)> ReadClusterAsync(CancellationToken cancellationToken)
    {
        var version = new TableVersion(0, "0");
        var rows = new List<StoredRow>();
        using var request = _requests.ReadFolder(_clusterFolder);
        using var response = await _http.SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            // No key under the folder. A missing version key reads as version 0 with etag 0, which cas=0 matches.
            return (version, rows);
        }

        await EnsureSuccessAsync(response, cancellationToken);
        using var document = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(cancellationToken));
        foreach (var kv in document.RootElement.EnumerateArray())
        {
            var key = kv.GetProperty("Key").GetString() ?? string.Empty;
            var index = kv.GetProperty("ModifyIndex").GetUInt64();
            var value = kv.TryGetProperty("Value", out var v) && v.ValueKind == JsonValueKind.String ? v.GetBytesFromBase64() : [];
            if (key == _versionKey)
            {
                version = new TableVersion(int.Parse(Encoding.ASCII.GetString(value), NumberStyles.None, CultureInfo.InvariantCulture), Etag(index));
            }
            else if (key.StartsWith(_membersFolder, StringComparison.Ordinal))
            {
                rows.Add(new StoredRow(key, index, MembershipEntryCodec.Deserialize(value)));
            }
        }

        return (version, rows);
    }

    private async Task<bool> SendForBooleanAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using (request)
        {
            using var response = await _http.SendAsync(request, cancellationToken);
            await EnsureSuccessAsync(response, cancellationToken);
            var body = (await response.Content.ReadAsStringAsync(cancellationToken)).Trim();
            return bool.Parse(body);
        }
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (!response.IsSuccessStatusCode)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            throw new HttpRequestException(
                $"Consul answered {(int)response.StatusCode} {response.ReasonPhrase} to {response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: {body}",
                inner: null,
                response.StatusCode);
        }
    }

    private string ClusterFolder(string clusterId) => $"{_prefix}/{clusterId}/";

    private string MemberKey(SiloAddress silo) => _membersFolder + MembershipEntryCodec.RowName(silo);

    private static string Etag(ulong index) => index.ToString(CultureInfo.InvariantCulture);

    private static bool TryParseIndex(string? etag, out ulong index) =>
        ulong.TryParse(etag, NumberStyles.None, CultureInfo.InvariantCulture, out index);

    private sealed record StoredRow(string Key, ulong ModifyIndex, MembershipEntry Entry);
}
