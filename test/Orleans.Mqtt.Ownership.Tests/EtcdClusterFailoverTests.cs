using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Orleans.Mqtt.Ownership.Etcd;
using Orleans.Mqtt.Testing;
using Xunit.Abstractions;

namespace Orleans.Mqtt.Ownership.Tests;

/// <summary>Ownership on a three-member etcd whose leader is killed with SIGKILL in the middle of a connect storm.</summary>
public sealed class EtcdClusterFailoverTests(ITestOutputHelper output)
{
    private const int ClientIds = 40;
    private const int Contenders = 16;
    private const int CommitsBeforeKill = 300;
    private const int CommitsAfterKill = 300;
    private static readonly TimeSpan MaxPause = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Commits_go_on_after_the_etcd_leader_is_killed_and_no_client_id_ever_has_two_owners()
    {
        await using var etcd = await EtcdCluster.StartAsync(3);
        await using var ownership = EtcdOwnership.Create(etcd.ConnectionString, o => o.RequestTimeout = TimeSpan.FromSeconds(2));
        var store = ownership.Store;
        var ids = Enumerable.Range(0, ClientIds).Select(i => $"storm-{i}").ToArray();
        var clock = Stopwatch.StartNew();
        var commits = new ConcurrentQueue<Commit>();
        var failures = new ConcurrentQueue<string>();
        var conflicts = 0;
        var killedAtTicks = long.MaxValue;
        var beforeKill = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var afterKill = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var committedAfterKill = 0;
        long nextConnection = 0;
        using var stop = new CancellationTokenSource();

        // Each contender connects a random client id again and again, as gateways do for clients that reconnect: it
        // reads the record and commits itself over it by compare-and-swap. Contenders race on the same ids, and a
        // failed call (etcd unavailable, no leader) is a client that connects again.
        async Task ContendAsync(int contender)
        {
            var random = new Random(contender);
            while (!stop.IsCancellationRequested)
            {
                var clientId = ids[random.Next(ids.Length)];
                try
                {
                    var (current, revision) = await store.ReadAsync(clientId);
                    var owner = new SessionOwner($"gw-{contender}", Interlocked.Increment(ref nextConnection), (current?.Epoch ?? 0) + 1);
                    var result = await store.CommitAsync(clientId, owner, revision);
                    if (!result.Committed)
                    {
                        Interlocked.Increment(ref conflicts);
                        continue;
                    }

                    var at = clock.Elapsed;
                    commits.Enqueue(new Commit(clientId, owner, revision, result.Revision, at));
                    if (commits.Count >= CommitsBeforeKill)
                    {
                        beforeKill.TrySetResult();
                    }

                    if (at.Ticks > Interlocked.Read(ref killedAtTicks) && Interlocked.Increment(ref committedAfterKill) >= CommitsAfterKill)
                    {
                        afterKill.TrySetResult();
                    }
                }
                catch (EtcdOwnershipException e)
                {
                    failures.Enqueue(e.Message);
                }
                catch (RpcException e)
                {
                    failures.Enqueue($"{e.StatusCode} {e.Status.Detail}");
                }
                catch (OperationCanceledException) when (!stop.IsCancellationRequested)
                {
                    // The call's deadline (the store's request timeout) passed while the members elected a leader:
                    // the etcd client reports that as a cancellation, not as an RpcException.
                    failures.Enqueue("deadline exceeded");
                }
            }
        }

        var storm = Enumerable.Range(0, Contenders).Select(c => Task.Run(() => ContendAsync(c))).ToArray();
        try
        {
            await beforeKill.Task.WaitAsync(TimeSpan.FromSeconds(30));
            var leader = await LeaderAsync(etcd);
            Interlocked.Exchange(ref killedAtTicks, clock.Elapsed.Ticks);
            await etcd.KillAsync(leader);
            await afterKill.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(storm);
        }

        // The pause: the longest time without a commit from the last commit before the kill on (a commit completing
        // just after the kill may have been decided before it).
        var killedAt = TimeSpan.FromTicks(killedAtTicks);
        var all = commits.OrderBy(c => c.At).ToList();
        var times = all.Select(c => c.At).Where(t => t > killedAt).Prepend(all.Last(c => c.At <= killedAt).At).ToList();
        var pause = times.Zip(times.Skip(1), (a, b) => b - a).Max();
        output.WriteLine($"{all.Count} commits, {conflicts} conflicts, {failures.Count} failed calls; longest time without a commit after the leader was killed: {pause.TotalMilliseconds:F0} ms");
        foreach (var failure in failures.Distinct().Take(5))
        {
            output.WriteLine("  failure: " + failure);
        }

        Assert.True(pause < MaxPause, $"commits paused {pause} after the leader was killed");

        // No two owners: per client id, no two commits were made over the same revision, and etcd's own history agrees
        // with every commit that was reported (the record at its revision is that owner, and just before it the record
        // was at the revision the commit expected).
        foreach (var perId in all.GroupBy(c => c.ClientId))
        {
            var overSameRevision = perId.GroupBy(c => c.Expected).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
            Assert.True(overSameRevision.Count == 0, $"{perId.Key}: several owners committed over revision(s) {string.Join(", ", overSameRevision)}");
        }

        using var client = new EtcdClient(etcd.ConnectionString, configureChannelOptions: o => o.Credentials = ChannelCredentials.Insecure);
        foreach (var commit in all)
        {
            var key = ByteString.CopyFrom(Encoding.UTF8.GetBytes($"/orleans-mqtt/test/owners/{commit.ClientId}"));
            var at = await client.GetAsync(new RangeRequest { Key = key, Revision = commit.Revision });
            Assert.Equal(commit.Owner, OwnerRecordCodec.Decode(Assert.Single(at.Kvs).Value.Span));
            var before = await client.GetAsync(new RangeRequest { Key = key, Revision = commit.Revision - 1 });
            Assert.Equal(commit.Expected, before.Kvs.Count == 0 ? 0 : before.Kvs[0].ModRevision);
        }
    }

    /// <summary>The index of the member that is the leader now, from each member's status (etcd's JSON gateway).</summary>
    private static async Task<int> LeaderAsync(EtcdCluster etcd)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        for (var i = 0; i < etcd.ClientUrls.Count; i++)
        {
            using var response = await http.PostAsync(etcd.ClientUrls[i] + "/v3/maintenance/status", new StringContent("{}"));
            using var status = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var member = status.RootElement.GetProperty("header").GetProperty("member_id").GetString();
            if (member == status.RootElement.GetProperty("leader").GetString())
            {
                return i;
            }
        }

        throw new InvalidOperationException("no etcd member says it is the leader");
    }

    private sealed record Commit(string ClientId, SessionOwner Owner, long Expected, long Revision, TimeSpan At);
}
