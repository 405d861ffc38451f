using System.Globalization;
using System.Net;
using Orleans.Messaging;

namespace Orleans.Mqtt.Clustering.Tests;

/// <summary>
/// The behaviour every <see cref="IMembershipTable"/> of this repository owes Orleans, run against each store by a
/// subclass. Each test works in a cluster id of its own, so tests of one store can share one server.
/// </summary>
public abstract class MembershipTableContractTests : IAsyncLifetime
{
    private static int _generation;
    private readonly List<IMembershipTable> _tables = [];

    // Ends a hung store call instead of hanging the test run.
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(2));
    private IMembershipTable? _table;

    protected string ClusterId { get; } = "test-" + Guid.NewGuid().ToString("N");

    private CancellationToken Ct => _timeout.Token;

    private IMembershipTable Table => _table ?? throw new InvalidOperationException("The store is not available.");

    /// <summary>Why the store cannot be reached here, or null when the tests can run.</summary>
    protected abstract string? SkipReason { get; }

    /// <summary>A new table instance (silo side) for <paramref name="clusterId"/>, not yet initialized.</summary>
    protected abstract IMembershipTable CreateTable(string clusterId);

    /// <summary>A new gateway list provider (client side) for <paramref name="clusterId"/>, not yet initialized.</summary>
    protected abstract IGatewayListProvider CreateGatewayListProvider(string clusterId);

    public async Task InitializeAsync()
    {
        if (SkipReason is null)
        {
            _table = await NewTableAsync(ClusterId);
        }
    }

    public async Task DisposeAsync()
    {
        if (_table is not null)
        {
            await _table.DeleteMembershipTableEntriesAsync(ClusterId, Ct);
        }

        foreach (var table in _tables)
        {
            (table as IDisposable)?.Dispose();
        }

        _timeout.Dispose();
    }

    [SkippableFact]
    public async Task ReadAll_OfANewTable_IsEmptyAtVersionZero()
    {
        SkipUnlessAvailable();

        var data = await Table.ReadAllAsync(Ct);

        Assert.Empty(data.Members);
        Assert.Equal(0, data.Version.Version);
        Assert.NotNull(data.Version.VersionEtag);
    }

    [SkippableFact]
    public async Task Initialize_AgainOnAnotherInstance_KeepsTheTable()
    {
        SkipUnlessAvailable();
        Assert.True(await Table.InsertRowAsync(NewEntry(), (await Table.ReadAllAsync(Ct)).Version.Next(), Ct));

        var second = await NewTableAsync(ClusterId);
        var data = await second.ReadAllAsync(Ct);

        Assert.Equal(1, data.Version.Version);
        Assert.Single(data.Members);
    }

    [SkippableFact]
    public async Task InsertRow_ThenReadAllAndReadRow_ReturnTheRowTheVersionAndFreshEtags()
    {
        SkipUnlessAvailable();
        var entry = NewEntry();
        entry.AddSuspector(NewSiloAddress(), Seconds(DateTime.UtcNow));
        var next = (await Table.ReadAllAsync(Ct)).Version.Next();

        Assert.True(await Table.InsertRowAsync(entry, next, Ct));

        var all = await Table.ReadAllAsync(Ct);
        Assert.Equal(1, all.Version.Version);
        Assert.NotEqual(next.VersionEtag, all.Version.VersionEtag);
        var (stored, etag) = Assert.Single(all.Members);
        Assert.Equal(entry.ToFullString(), stored.ToFullString());
        Assert.False(string.IsNullOrEmpty(etag));

        var row = await Table.ReadRowAsync(entry.SiloAddress, Ct);
        Assert.Equal(all.Version, row.Version);
        var (rowEntry, rowEtag) = Assert.Single(row.Members);
        Assert.Equal(entry.ToFullString(), rowEntry.ToFullString());
        Assert.Equal(etag, rowEtag);

        var missing = await Table.ReadRowAsync(NewSiloAddress(), Ct);
        Assert.Empty(missing.Members);
        Assert.Equal(all.Version, missing.Version);
    }

    [SkippableFact]
    public async Task InsertRow_WithAStaleVersionOrForAnExistingSilo_Fails()
    {
        SkipUnlessAvailable();
        var entry = NewEntry();
        var next = (await Table.ReadAllAsync(Ct)).Version.Next();
        Assert.True(await Table.InsertRowAsync(entry, next, Ct));

        Assert.False(await Table.InsertRowAsync(NewEntry(), next, Ct), "a new silo with the version already used");
        Assert.False(await Table.InsertRowAsync(entry, next, Ct), "the same silo with the version already used");
        Assert.False(await Table.InsertRowAsync(entry, (await Table.ReadAllAsync(Ct)).Version.Next(), Ct), "the same silo again with a fresh version");

        var data = await Table.ReadAllAsync(Ct);
        Assert.Equal(1, data.Version.Version);
        Assert.Single(data.Members);
    }

    [SkippableFact]
    public async Task UpdateRow_WithAWrongEtag_Fails()
    {
        SkipUnlessAvailable();
        var entry = NewEntry();
        Assert.True(await Table.InsertRowAsync(entry, (await Table.ReadAllAsync(Ct)).Version.Next(), Ct));
        var data = await Table.ReadAllAsync(Ct);
        var etag = data.Members[0].Item2;
        var otherEtag = (long.Parse(etag, CultureInfo.InvariantCulture) + 1000).ToString(CultureInfo.InvariantCulture);
        entry.Status = SiloStatus.Active;

        Assert.False(await Table.UpdateRowAsync(entry, otherEtag, data.Version.Next(), Ct));
        Assert.False(await Table.UpdateRowAsync(entry, "not an etag", data.Version.Next(), Ct));
        Assert.False(await Table.UpdateRowAsync(NewEntry(), etag, data.Version.Next(), Ct), "a silo that has no row");

        var after = await Table.ReadAllAsync(Ct);
        Assert.Equal(data.Version, after.Version);
        Assert.Equal(SiloStatus.Joining, Assert.Single(after.Members).Item1.Status);
    }

    [SkippableFact]
    public async Task UpdateRow_WithAStaleVersion_Fails_AndWithTheCurrentOne_Succeeds()
    {
        SkipUnlessAvailable();
        var entry = NewEntry();
        var inserted = (await Table.ReadAllAsync(Ct)).Version.Next();
        Assert.True(await Table.InsertRowAsync(entry, inserted, Ct));
        var etag = (await Table.ReadAllAsync(Ct)).Members[0].Item2;
        entry.Status = SiloStatus.Active;

        Assert.False(await Table.UpdateRowAsync(entry, etag, inserted, Ct), "the version the insert used");

        var next = (await Table.ReadAllAsync(Ct)).Version.Next();
        Assert.True(await Table.UpdateRowAsync(entry, etag, next, Ct));
        Assert.False(await Table.UpdateRowAsync(entry, etag, next, Ct), "the same etag and version a second time");

        var data = await Table.ReadAllAsync(Ct);
        Assert.Equal(2, data.Version.Version);
        var (stored, newEtag) = Assert.Single(data.Members);
        Assert.Equal(SiloStatus.Active, stored.Status);
        Assert.NotEqual(etag, newEtag);
    }

    [SkippableFact]
    public async Task ConcurrentInserts_OfDifferentSilos_AtOneVersion_OnlyOneWins()
    {
        SkipUnlessAvailable();
        var next = (await Table.ReadAllAsync(Ct)).Version.Next();
        var entries = Enumerable.Range(0, 10).Select(_ => NewEntry()).ToArray();

        var results = await Task.WhenAll(entries.Select(e => Table.InsertRowAsync(e, next, Ct)));

        Assert.Equal(1, results.Count(ok => ok));
        var data = await Table.ReadAllAsync(Ct);
        Assert.Equal(1, data.Version.Version);
        var winner = entries[Array.IndexOf(results, true)];
        Assert.Equal(winner.SiloAddress, Assert.Single(data.Members).Item1.SiloAddress);
    }

    [SkippableFact]
    public async Task ConcurrentUpdates_ThatRetryOnConflict_AllLand_AndNoneIsLost()
    {
        SkipUnlessAvailable();
        var entry = NewEntry();
        Assert.True(await Table.InsertRowAsync(entry, (await Table.ReadAllAsync(Ct)).Version.Next(), Ct));
        var voters = Enumerable.Range(0, 6).Select(_ => NewSiloAddress()).ToArray();

        // Each voter adds its suspicion the way Orleans does: read, change, conditional write, again on a conflict.
        await Task.WhenAll(voters.Select(async voter =>
        {
            for (var attempt = 0; attempt < 200; attempt++)
            {
                var data = await Table.ReadAllAsync(Ct);
                var (current, etag) = data.Members[0];
                current.AddSuspector(voter, Seconds(DateTime.UtcNow));
                if (await Table.UpdateRowAsync(current, etag, data.Version.Next(), Ct))
                {
                    return;
                }
            }

            Assert.Fail($"voter {voter} never got its update in");
        })).WaitAsync(TimeSpan.FromSeconds(60));

        var final = await Table.ReadAllAsync(Ct);
        Assert.Equal(1 + voters.Length, final.Version.Version);
        var votes = Assert.Single(final.Members).Item1.SuspectTimes!;
        Assert.Equal(voters.OrderBy(v => v.ToParsableString()), votes.Select(v => v.Item1).OrderBy(v => v.ToParsableString()));
    }

    [SkippableFact]
    public async Task UpdateIAmAlive_ChangesOnlyTheIAmAliveTime_AndNotTheVersion()
    {
        SkipUnlessAvailable();
        var entry = NewEntry();
        Assert.True(await Table.InsertRowAsync(entry, (await Table.ReadAllAsync(Ct)).Version.Next(), Ct));
        var data = await Table.ReadAllAsync(Ct);
        entry.Status = SiloStatus.Active;
        entry.AddSuspector(NewSiloAddress(), Seconds(DateTime.UtcNow));
        Assert.True(await Table.UpdateRowAsync(entry, data.Members[0].Item2, data.Version.Next(), Ct));
        var before = await Table.ReadAllAsync(Ct);
        var alive = entry.IAmAliveTime.AddMinutes(5);

        // Orleans passes an entry that has nothing but the address and the time.
        await Table.UpdateIAmAliveAsync(new MembershipEntry { SiloAddress = entry.SiloAddress, IAmAliveTime = alive }, Ct);

        var after = await Table.ReadAllAsync(Ct);
        Assert.Equal(before.Version, after.Version);
        var stored = Assert.Single(after.Members).Item1;
        Assert.Equal(alive, stored.IAmAliveTime);
        entry.IAmAliveTime = alive;
        Assert.Equal(entry.ToFullString(), stored.ToFullString());
    }

    [SkippableFact]
    public async Task UpdateIAmAlive_OfASiloWithoutARow_Throws()
    {
        SkipUnlessAvailable();

        await Assert.ThrowsAnyAsync<Exception>(
            () => Table.UpdateIAmAliveAsync(new MembershipEntry { SiloAddress = NewSiloAddress(), IAmAliveTime = DateTime.UtcNow }, Ct));
        Assert.Empty((await Table.ReadAllAsync(Ct)).Members);
    }

    [SkippableFact]
    public async Task CleanupDefunctSiloEntries_RemovesOldRowsOfSilosThatAreNotActive()
    {
        SkipUnlessAvailable();
        var now = Seconds(DateTime.UtcNow);
        var kept = new List<MembershipEntry>();
        var removed = new List<MembershipEntry>();
        foreach (var status in Enum.GetValues<SiloStatus>())
        {
            var old = NewEntry(status, now.AddDays(-10));
            (status == SiloStatus.Active ? kept : removed).Add(old);
        }

        kept.Add(NewEntry(SiloStatus.Joining, now));
        kept.Add(NewEntry(SiloStatus.Dead, now));
        var recentlyDeclaredDead = NewEntry(SiloStatus.Dead, now.AddDays(-10));
        recentlyDeclaredDead.AddSuspector(NewSiloAddress(), now);
        kept.Add(recentlyDeclaredDead);
        foreach (var entry in kept.Concat(removed))
        {
            Assert.True(await Table.InsertRowAsync(entry, (await Table.ReadAllAsync(Ct)).Version.Next(), Ct));
        }

        await Table.CleanupDefunctSiloEntriesAsync(now.AddDays(-7), Ct);

        var left = (await Table.ReadAllAsync(Ct)).Members.Select(m => m.Item1.SiloAddress).ToHashSet();
        Assert.True(left.SetEquals(kept.Select(e => e.SiloAddress)), $"left: {string.Join(", ", left)}");
    }

    [SkippableFact]
    public async Task DeleteMembershipTableEntries_RemovesThatClusterOnly()
    {
        SkipUnlessAvailable();
        // An id that starts with this test's id: deleting this cluster must not touch it.
        var otherClusterId = ClusterId + "-other";
        var other = await NewTableAsync(otherClusterId);
        try
        {
            Assert.True(await Table.InsertRowAsync(NewEntry(), (await Table.ReadAllAsync(Ct)).Version.Next(), Ct));
            Assert.True(await other.InsertRowAsync(NewEntry(), (await other.ReadAllAsync(Ct)).Version.Next(), Ct));

            await Table.DeleteMembershipTableEntriesAsync(ClusterId, Ct);

            var data = await Table.ReadAllAsync(Ct);
            Assert.Empty(data.Members);
            Assert.Equal(0, data.Version.Version);
            var otherData = await other.ReadAllAsync(Ct);
            Assert.Single(otherData.Members);
            Assert.Equal(1, otherData.Version.Version);
        }
        finally
        {
            await other.DeleteMembershipTableEntriesAsync(otherClusterId, Ct);
        }
    }

    [SkippableFact]
    public async Task GatewayListProvider_ReturnsTheProxyEndpointsOfActiveSilos()
    {
        SkipUnlessAvailable();
        var activeA = NewEntry(SiloStatus.Active);
        var activeB = NewEntry(SiloStatus.Active);
        var activeWithoutProxy = NewEntry(SiloStatus.Active);
        activeWithoutProxy.ProxyPort = 0;
        var entries = new[] { activeA, NewEntry(SiloStatus.Joining), activeB, activeWithoutProxy, NewEntry(SiloStatus.Dead), NewEntry(SiloStatus.ShuttingDown) };
        foreach (var entry in entries)
        {
            Assert.True(await Table.InsertRowAsync(entry, (await Table.ReadAllAsync(Ct)).Version.Next(), Ct));
        }

        var provider = CreateGatewayListProvider(ClusterId);
        try
        {
            await provider.InitializeGatewayListProviderAsync(Ct);
            var gateways = await provider.GetGatewaysAsync(Ct);

            var expected = new[] { activeA, activeB }
                .Select(e => SiloAddress.New(e.SiloAddress.Endpoint.Address, e.ProxyPort, e.SiloAddress.Generation).ToGatewayUri())
                .OrderBy(u => u.ToString())
                .ToArray();
            Assert.Equal(expected, gateways.OrderBy(u => u.ToString()).ToArray());
            Assert.All(gateways, g => Assert.NotEqual(activeA.SiloAddress.Endpoint.Port, g.Port));
        }
        finally
        {
            (provider as IDisposable)?.Dispose();
        }
    }

    private void SkipUnlessAvailable() => Skip.If(SkipReason is not null, SkipReason);

    private async Task<IMembershipTable> NewTableAsync(string clusterId)
    {
        var table = CreateTable(clusterId);
        _tables.Add(table);
        await table.InitializeMembershipTableAsync(tryInitTableVersion: true, Ct);
        return table;
    }

    private static MembershipEntry NewEntry(SiloStatus status = SiloStatus.Joining, DateTime? time = null)
    {
        var silo = NewSiloAddress();
        var at = time ?? Seconds(DateTime.UtcNow);
        return new MembershipEntry
        {
            SiloAddress = silo,
            Status = status,
            HostName = "host-" + silo.Generation.ToString(CultureInfo.InvariantCulture),
            SiloName = "silo-" + silo.Generation.ToString(CultureInfo.InvariantCulture),
            // Not the silo port: the gateway list must be built from the proxy port.
            ProxyPort = 30000 + (silo.Generation % 1000),
            RoleName = "mqtt",
            UpdateZone = 2,
            FaultZone = 3,
            StartTime = at,
            IAmAliveTime = at,
        };
    }

    private static SiloAddress NewSiloAddress() =>
        SiloAddress.New(IPAddress.Loopback, 11111, 100_000 + Interlocked.Increment(ref _generation));

    private static DateTime Seconds(DateTime time) =>
        new(time.Ticks - (time.Ticks % TimeSpan.TicksPerSecond), DateTimeKind.Utc);
}
