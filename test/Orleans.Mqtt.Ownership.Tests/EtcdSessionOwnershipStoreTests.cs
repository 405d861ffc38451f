using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.ExceptionServices;
using dotnet_etcd;
using Etcdserverpb;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Testing;
using Orleans.Mqtt.Ownership.Etcd;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Ownership.Tests;

/// <summary>One real etcd for the class; each test works on its own client ids.</summary>
public sealed class EtcdOwnershipFixture : IAsyncLifetime
{
    private EtcdOwnership? _ownership;

    public EtcdServer Etcd { get; } = new();

    internal EtcdSessionOwnershipStore Store => _ownership!.Store;

    public async Task InitializeAsync()
    {
        await Etcd.InitializeAsync();
        _ownership = EtcdOwnership.Create(Etcd.ClientUrl);
    }

    public async Task DisposeAsync()
    {
        if (_ownership is not null)
        {
            await _ownership.DisposeAsync();
        }

        await Etcd.DisposeAsync();
    }
}

public sealed class EtcdSessionOwnershipStoreTests(EtcdOwnershipFixture fixture) : SessionOwnershipStoreContractTests, IClassFixture<EtcdOwnershipFixture>
{
    // Long enough that every commit a test queues at once lands in the same batch window.
    private static readonly TimeSpan OneWindow = TimeSpan.FromMilliseconds(300);

    protected override ISessionOwnershipStore Store => fixture.Store;

    [Fact]
    public async Task A_thousand_concurrent_commits_go_out_in_few_transactions_each_with_its_own_revision()
    {
        await using var ownership = EtcdOwnership.Create(fixture.Etcd.ClientUrl);
        var store = ownership.Store;
        var clientIds = Enumerable.Range(0, 1000).Select(i => $"{NewClientId()}-{i}").ToArray();

        var commits = await Task.WhenAll(clientIds.Select((id, i) => Task.Run(() => store.CommitAsync(id, new SessionOwner("gw", i, 1), 0).AsTask())));

        Assert.All(commits, c => Assert.True(c.Committed));
        Assert.InRange(store.Transactions, 8, 100);

        // The writes of one transaction share its revision: as many revisions as transactions.
        Assert.Equal(store.Transactions, commits.Select(c => c.Revision).Distinct().Count());
        var reads = await Task.WhenAll(clientIds.Select(id => store.ReadAsync(id).AsTask()));
        for (var i = 0; i < clientIds.Length; i++)
        {
            Assert.Equal(commits[i].Revision, reads[i].Revision);
            Assert.Equal(i, reads[i].Owner!.ConnectionId);
        }
    }

    [Fact]
    public async Task A_batch_delay_used_up_before_the_batch_is_filled_sends_at_once_and_keeps_the_committer_running()
    {
        // One tick is always gone by the time the first operations are taken: the committer must send, not fault.
        await using var ownership = EtcdOwnership.Create(fixture.Etcd.ClientUrl, o => o.MaxBatchDelay = TimeSpan.FromTicks(1));
        var store = ownership.Store;
        for (var round = 0; round < 3; round++)
        {
            var clientIds = Enumerable.Range(0, 50).Select(i => $"{NewClientId()}-{i}").ToArray();
            var commits = await Task.WhenAll(clientIds.Select((id, i) => store.CommitAsync(id, new SessionOwner("gw", i, 1), 0).AsTask()))
                .WaitAsync(TimeSpan.FromSeconds(10));
            Assert.All(commits, c => Assert.True(c.Committed));
        }
    }

    [Fact]
    public async Task A_batch_that_waits_out_its_delay_throws_no_exception()
    {
        // One commit at a time: every batch waits out the whole delay before it goes. That wait's end must not be a
        // thrown exception (it was one per transaction, a few per cent of a silo's CPU under a connect storm).
        await using var ownership = EtcdOwnership.Create(fixture.Etcd.ClientUrl, o => o.MaxBatchDelay = TimeSpan.FromMilliseconds(20));
        var store = ownership.Store;
        var thrownWhileFilling = 0;
        void Count(object? sender, FirstChanceExceptionEventArgs e)
        {
            // The committer's wait for more operations of a batch (FillAsync, shown as such or as its state machine);
            // other code in the process may throw meanwhile.
            var trace = Environment.StackTrace;
            if (trace.Contains("EtcdSessionOwnershipStore.FillAsync", StringComparison.Ordinal)
                || trace.Contains("EtcdSessionOwnershipStore.<FillAsync>", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref thrownWhileFilling);
            }
        }

        AppDomain.CurrentDomain.FirstChanceException += Count;
        try
        {
            for (var i = 0; i < 10; i++)
            {
                var commit = await store.CommitAsync($"{NewClientId()}-{i}", new SessionOwner("gw", i, 1), 0).AsTask()
                    .WaitAsync(TimeSpan.FromSeconds(10));
                Assert.True(commit.Committed);
            }
        }
        finally
        {
            AppDomain.CurrentDomain.FirstChanceException -= Count;
        }

        Assert.Equal(10, store.Transactions);
        Assert.Equal(0, Volatile.Read(ref thrownWhileFilling));
    }

    [Fact]
    public async Task In_a_batch_with_conflicts_the_others_still_commit()
    {
        await using var ownership = EtcdOwnership.Create(fixture.Etcd.ClientUrl, o => o.MaxBatchDelay = OneWindow);
        var store = ownership.Store;
        var ids = Enumerable.Range(0, 10).Select(_ => NewClientId()).ToArray();
        var existing = await Task.WhenAll(ids.Select((id, i) => Store.CommitAsync(id, new SessionOwner("old", i, 1), 0).AsTask()));

        var before = store.Transactions;

        // Even ids expect the revision they have, odd ids a stale one.
        var commits = await Task.WhenAll(ids.Select((id, i) =>
            store.CommitAsync(id, new SessionOwner("new", i, 2), i % 2 == 0 ? existing[i].Revision : existing[i].Revision - 1).AsTask()));

        for (var i = 0; i < ids.Length; i++)
        {
            if (i % 2 == 0)
            {
                Assert.True(commits[i].Committed);
                Assert.Equal((new SessionOwner("new", i, 2), commits[i].Revision), await store.ReadAsync(ids[i]));
            }
            else
            {
                Assert.Equal(new OwnershipCommit(false, existing[i].Revision, new SessionOwner("old", i, 1)), commits[i]);
            }
        }

        // One transaction found the conflicts, the next committed the rest.
        Assert.Equal(2, store.Transactions - before);
    }

    [Fact]
    public async Task Two_commits_on_one_key_in_one_batch_window_have_one_winner()
    {
        await using var ownership = EtcdOwnership.Create(fixture.Etcd.ClientUrl, o => o.MaxBatchDelay = OneWindow);
        var store = ownership.Store;
        var clientId = NewClientId();
        var a = new SessionOwner("gw-a", 1, 1);
        var b = new SessionOwner("gw-b", 2, 1);

        var commits = await Task.WhenAll(store.CommitAsync(clientId, a, 0).AsTask(), store.CommitAsync(clientId, b, 0).AsTask());

        var winner = Assert.Single(commits, c => c.Committed);
        var loser = Assert.Single(commits, c => !c.Committed);
        Assert.Equal(winner.Revision, loser.Revision);
        Assert.Equal(winner.Current, loser.Current);
        Assert.Equal((winner.Current, winner.Revision), await store.ReadAsync(clientId));
    }

    [Fact]
    public async Task A_record_on_the_gateway_lease_goes_when_the_lease_is_revoked()
    {
        var lease = EtcdOwnership.Lease(fixture.Etcd.ClientUrl, TimeSpan.FromSeconds(10));
        await lease.StartAsync(CancellationToken.None);
        var clientId = NewClientId();
        var owner = new SessionOwner("gw", 1, 1, lease.LeaseId);

        var commit = await Store.CommitAsync(clientId, owner, 0);
        Assert.True(commit.Committed);
        Assert.Equal((owner, commit.Revision), await Store.ReadAsync(clientId));

        await lease.StopAsync(CancellationToken.None);
        await lease.DisposeAsync();

        Assert.Equal(0, lease.LeaseId);
        Assert.Equal((null, 0), await Store.ReadAsync(clientId));
    }

    [Fact]
    public async Task A_record_on_a_lease_no_longer_kept_alive_expires()
    {
        var lease = EtcdOwnership.Lease(fixture.Etcd.ClientUrl, TimeSpan.FromSeconds(2));
        await lease.StartAsync(CancellationToken.None);
        var clientId = NewClientId();
        Assert.True((await Store.CommitAsync(clientId, new SessionOwner("gw", 1, 1, lease.LeaseId), 0)).Committed);

        // Dispose stops the keep-alive without revoking: the gateway died.
        await lease.DisposeAsync();

        await WaitUntilAsync(async () => (await Store.ReadAsync(clientId)).Revision == 0, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_lease_found_gone_is_replaced()
    {
        var lease = EtcdOwnership.Lease(fixture.Etcd.ClientUrl, TimeSpan.FromSeconds(3));
        var replaced = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        lease.LeaseReplaced += id => replaced.TrySetResult(id);
        await lease.StartAsync(CancellationToken.None);
        var first = lease.LeaseId;

        using (var client = Client())
        {
            await client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = first });
        }

        var second = await replaced.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.NotEqual(first, second);
        Assert.Equal(second, lease.LeaseId);
        var clientId = NewClientId();
        Assert.True((await Store.CommitAsync(clientId, new SessionOwner("gw", 1, 1, second), 0)).Committed);

        await lease.StopAsync(CancellationToken.None);
        await lease.DisposeAsync();
    }

    [Fact]
    public async Task A_commit_on_a_lease_that_is_gone_fails_alone_and_its_batch_still_commits()
    {
        await using var ownership = EtcdOwnership.Create(fixture.Etcd.ClientUrl, o => o.MaxBatchDelay = OneWindow);
        var lease = EtcdOwnership.Lease(fixture.Etcd.ClientUrl, TimeSpan.FromSeconds(10));
        await lease.StartAsync(CancellationToken.None);
        try
        {
            var onLiveLease = ownership.Store.CommitAsync(NewClientId(), new SessionOwner("gw-live", 1, 1, lease.LeaseId), 0).AsTask();
            var onDeadLease = ownership.Store.CommitAsync(NewClientId(), new SessionOwner("gw-dead", 2, 1, LeaseId: 0x7eadbeef), 0).AsTask();
            var withoutLease = ownership.Store.CommitAsync(NewClientId(), new SessionOwner("gw", 3, 1), 0).AsTask();

            var failure = await Assert.ThrowsAsync<EtcdOwnershipException>(() => onDeadLease);
            Assert.Contains("7eadbeef", failure.Message, StringComparison.Ordinal);
            Assert.True((await onLiveLease).Committed);
            Assert.True((await withoutLease).Committed);
        }
        finally
        {
            await lease.StopAsync(CancellationToken.None);
            await lease.DisposeAsync();
        }
    }

    [Fact]
    public async Task Commits_are_counted_by_outcome_and_transactions_by_size()
    {
        await using var ownership = EtcdOwnership.Create(fixture.Etcd.ClientUrl, o => o.MaxBatchDelay = OneWindow);
        var factory = ownership.Services.GetRequiredService<IMeterFactory>();
        var counts = new ConcurrentDictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Scope == factory && instrument.Meter.Name == MqttMetrics.MeterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            counts.AddOrUpdate($"{instrument.Name}:{tags[0].Value}", value, (_, sum) => sum + value));
        listener.SetMeasurementEventCallback<int>((instrument, value, _, _) => counts.AddOrUpdate($"{instrument.Name}:{value}", 1, (_, n) => n + 1));
        listener.SetMeasurementEventCallback<double>((instrument, _, _, _) => counts.AddOrUpdate(instrument.Name, 1, (_, n) => n + 1));
        listener.Start();
        var taken = NewClientId();
        var existing = await Store.CommitAsync(taken, new SessionOwner("gw", 1, 1), 0);

        await Task.WhenAll(
            ownership.Store.CommitAsync(NewClientId(), new SessionOwner("gw", 2, 1), 0).AsTask(),
            ownership.Store.CommitAsync(NewClientId(), new SessionOwner("gw", 3, 1), 0).AsTask(),
            ownership.Store.CommitAsync(taken, new SessionOwner("gw", 4, 1), existing.Revision + 1).AsTask());

        Assert.Equal(2, counts.GetValueOrDefault("mqtt.ownership.commits:committed"));
        Assert.Equal(1, counts.GetValueOrDefault("mqtt.ownership.commits:conflict"));
        Assert.Equal(0, counts.GetValueOrDefault("mqtt.ownership.commits:failed"));
        Assert.Equal(1, counts.GetValueOrDefault("mqtt.ownership.batch.size:3"));
        Assert.Equal(1, counts.GetValueOrDefault("mqtt.ownership.batch.size:2"));
        Assert.Equal(2, counts.GetValueOrDefault("mqtt.ownership.txn.duration"));
    }

    [Fact]
    public async Task With_etcd_stopped_a_commit_fails_instead_of_hanging()
    {
        var etcd = new EtcdServer();
        await etcd.InitializeAsync();
        var requestTimeout = TimeSpan.FromSeconds(2);
        await using var ownership = EtcdOwnership.Create(etcd.ClientUrl, o => o.RequestTimeout = requestTimeout);
        Assert.True((await ownership.Store.CommitAsync(NewClientId(), new SessionOwner("gw", 1, 1), 0)).Committed);

        await etcd.DisposeAsync();

        var clock = Stopwatch.StartNew();
        var commit = ownership.Store.CommitAsync(NewClientId(), new SessionOwner("gw", 2, 1), 0).AsTask();
        await Assert.ThrowsAsync<EtcdOwnershipException>(() => commit.WaitAsync(requestTimeout * 3));
        Assert.True(clock.Elapsed < requestTimeout * 3, $"the failure took {clock.Elapsed}");
    }

    private EtcdClient Client() => new(fixture.Etcd.ClientUrl, configureChannelOptions: o => o.Credentials = ChannelCredentials.Insecure);

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(deadline.Elapsed < timeout, $"the condition did not hold within {timeout}");
            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }
    }
}
