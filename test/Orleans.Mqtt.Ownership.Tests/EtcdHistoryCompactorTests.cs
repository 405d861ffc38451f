using System.Diagnostics;
using System.Text;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Mqtt.Ownership.Etcd;

namespace Orleans.Mqtt.Ownership.Tests;

public sealed class EtcdHistoryCompactorTests(EtcdOwnershipFixture fixture) : IClassFixture<EtcdOwnershipFixture>
{
    [Fact]
    public async Task Of_two_silos_one_compacts_per_round_up_to_the_previous_round_and_current_records_stay()
    {
        var clusterId = NewClusterId();
        await using var siloA = EtcdOwnership.Create(fixture.Etcd.ClientUrl, o => o.ClusterId = clusterId);
        await using var siloB = EtcdOwnership.Create(fixture.Etcd.ClientUrl, o => o.ClusterId = clusterId);
        var compactorA = siloA.Services.GetRequiredService<EtcdHistoryCompactor>();
        var compactorB = siloB.Services.GetRequiredService<EtcdHistoryCompactor>();
        var store = siloA.Store;

        // A client that reconnects: every takeover is a new revision of its record.
        var revisions = new List<long>();
        await ReconnectAsync(store, "device", revisions, times: 5);

        Assert.Equal(0, await compactorA.RunRoundAsync(CancellationToken.None));   // places the first marker
        await ReconnectAsync(store, "device", revisions, times: 3);
        Assert.Equal(0, await compactorB.RunRoundAsync(CancellationToken.None));   // the marker is A's: B only learns it

        var compacted = await compactorA.RunRoundAsync(CancellationToken.None);
        Assert.Equal(0, await compactorB.RunRoundAsync(CancellationToken.None));   // A had this round

        // Up to the first marker, which came after the fifth write and before the sixth.
        Assert.InRange(compacted, revisions[4] + 1, revisions[5] - 1);
        using var client = Client();
        var old = await Assert.ThrowsAsync<RpcException>(() => client.GetAsync(new RangeRequest { Key = OwnerKey(clusterId, "device"), Revision = revisions[0] }));
        Assert.Equal(StatusCode.OutOfRange, old.StatusCode);
        Assert.Contains("compacted", old.Status.Detail, StringComparison.Ordinal);

        // The interval since the first marker is still readable, and the record as it is now is untouched.
        var kept = await client.GetAsync(new RangeRequest { Key = OwnerKey(clusterId, "device"), Revision = revisions[5] });
        Assert.Equal(revisions[5], kept.Kvs[0].ModRevision);
        Assert.Equal(new SessionOwner("gw", 8, 1), (await store.ReadAsync("device")).Owner);
        Assert.Equal(revisions[^1], (await store.ReadAsync("device")).Revision);

        // B has now seen the marker A left, so the next round is B's, up to that marker.
        await ReconnectAsync(store, "device", revisions, times: 1);
        var next = await compactorB.RunRoundAsync(CancellationToken.None);
        Assert.InRange(next, revisions[7] + 1, revisions[8] - 1);
        Assert.Equal(0, await compactorA.RunRoundAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_round_behind_a_compaction_made_by_etcd_or_an_operator_is_not_an_error()
    {
        var clusterId = NewClusterId();
        await using var silo = EtcdOwnership.Create(fixture.Etcd.ClientUrl, o => o.ClusterId = clusterId);
        var compactor = silo.Services.GetRequiredService<EtcdHistoryCompactor>();
        var revisions = new List<long>();
        Assert.Equal(0, await compactor.RunRoundAsync(CancellationToken.None));
        await ReconnectAsync(silo.Store, "device", revisions, times: 3);

        // Someone else compacts past the marker.
        using var client = Client();
        await client.CompactAsync(new CompactionRequest { Revision = revisions[^1] });

        Assert.Equal(0, await compactor.RunRoundAsync(CancellationToken.None));
        await ReconnectAsync(silo.Store, "device", revisions, times: 1);
        Assert.InRange(await compactor.RunRoundAsync(CancellationToken.None), revisions[^2] + 1, revisions[^1] - 1);
    }

    [Fact]
    public async Task The_host_runs_one_compactor_which_places_its_marker_at_start()
    {
        var clusterId = NewClusterId();
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddEtcdSessionOwnership(o =>
        {
            o.ConnectionString = fixture.Etcd.ClientUrl;
            o.ClusterId = clusterId;
        });
        builder.Services.AddEtcdSessionOwnership(o => o.CompactionInterval = TimeSpan.FromHours(1));
        using var host = builder.Build();

        Assert.Single(host.Services.GetServices<IHostedService>().OfType<EtcdHistoryCompactor>());
        await host.StartAsync();
        try
        {
            using var client = Client();
            var marker = ByteString.CopyFromUtf8($"/orleans-mqtt/{clusterId}/compaction");
            var clock = Stopwatch.StartNew();
            while ((await client.GetAsync(new RangeRequest { Key = marker })).Kvs.Count == 0)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the compactor placed no marker after start");
                await Task.Delay(TimeSpan.FromMilliseconds(50));
            }
        }
        finally
        {
            await host.StopAsync();
        }
    }

    private static async Task ReconnectAsync(ISessionOwnershipStore store, string clientId, List<long> revisions, int times)
    {
        for (var i = 0; i < times; i++)
        {
            var commit = await store.CommitAsync(clientId, new SessionOwner("gw", revisions.Count + 1, 1), revisions.Count == 0 ? 0 : revisions[^1]);
            Assert.True(commit.Committed);
            revisions.Add(commit.Revision);
        }
    }

    private static ByteString OwnerKey(string clusterId, string clientId) => ByteString.CopyFrom(Encoding.UTF8.GetBytes($"/orleans-mqtt/{clusterId}/owners/{clientId}"));

    private static string NewClusterId() => "compact-" + Guid.NewGuid().ToString("N")[..8];

    private EtcdClient Client() => new(fixture.Etcd.ClientUrl, configureChannelOptions: o => o.Credentials = ChannelCredentials.Insecure);
}
