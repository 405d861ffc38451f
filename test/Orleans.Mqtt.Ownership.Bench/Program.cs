using System.Diagnostics;
using System.Globalization;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Ownership.Etcd;
using Orleans.Mqtt.Testing;
using static Etcdserverpb.Compare.Types;

// Session commits per second to etcd: the batching store against one single-operation transaction per commit.
//   dotnet run -c Release --project test/Orleans.Mqtt.Ownership.Bench [-- --etcd http://127.0.0.1:2379] [--commits 20000] [--callers 256] [--delay-ms 2]
// Without --etcd it starts a throwaway etcd (/usr/bin/etcd) on free loopback ports.
// --churn: reconnects the same client ids over and over (each takeover a new revision of its record) and reports
// etcd's database size and memory at the end, with the history compacted every --compact-every rounds (0: never).
//   dotnet run -c Release --project test/Orleans.Mqtt.Ownership.Bench -- --churn --keys 2000 --rounds 100 --compact-every 10
var etcdUrl = Option(args, "--etcd", string.Empty);
var commits = int.Parse(Option(args, "--commits", "20000"), CultureInfo.InvariantCulture);
var callers = int.Parse(Option(args, "--callers", "256"), CultureInfo.InvariantCulture);
var delay = TimeSpan.FromMilliseconds(double.Parse(Option(args, "--delay-ms", "2"), CultureInfo.InvariantCulture));

await using var etcd = etcdUrl.Length == 0 ? new EtcdServer() : null;
if (etcd is not null)
{
    await etcd.InitializeAsync();
    etcdUrl = etcd.ClientUrl;
}

using var client = new EtcdClient(etcdUrl, configureChannelOptions: o => o.Credentials = ChannelCredentials.Insecure);
if (args.Contains("--churn"))
{
    await ChurnAsync(
        etcdUrl,
        client,
        etcd?.ProcessId ?? 0,
        int.Parse(Option(args, "--keys", "2000"), CultureInfo.InvariantCulture),
        int.Parse(Option(args, "--rounds", "100"), CultureInfo.InvariantCulture),
        int.Parse(Option(args, "--compact-every", "10"), CultureInfo.InvariantCulture),
        callers);
    return;
}

Console.WriteLine($"etcd {etcdUrl}, {commits} commits of distinct client ids, {callers} concurrent callers, batch delay {delay.TotalMilliseconds} ms, {Environment.ProcessorCount} cores");

var services = new ServiceCollection();
services.AddLogging();
services.AddEtcdSessionOwnership(o =>
{
    o.ConnectionString = etcdUrl;
    o.ClusterId = "bench";
    o.MaxBatchDelay = delay;
});
await using var provider = services.BuildServiceProvider();
var store = (EtcdSessionOwnershipStore)provider.GetRequiredService<ISessionOwnershipStore>();

var prefix = "/orleans-mqtt/bench/owners/";
var value = ByteString.CopyFromUtf8("gateway-0........................");
Func<string, Task<bool>> single = async clientId =>
{
    var key = ByteString.CopyFromUtf8(prefix + clientId);
    var txn = new TxnRequest();
    txn.Compare.Add(new Compare { Key = key, Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = 0 });
    txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = value } });
    return (await client.TransactionAsync(txn, deadline: DateTime.UtcNow.AddSeconds(10))).Succeeded;
};
Func<string, Task<bool>> batched = async clientId => (await store.CommitAsync(clientId, new SessionOwner("gateway-0", 1, 1), 0)).Committed;

// Warm both paths (connections, JIT) before measuring.
await RunAsync("warm-single", 1000, callers, single);
await RunAsync("warm-batched", 1000, callers, batched);

foreach (var round in new[] { 1, 2 })
{
    Report($"one Txn per commit (round {round})", await RunAsync($"single{round}", commits, callers, single));
    var before = store.Transactions;
    var result = await RunAsync($"batched{round}", commits, callers, batched);
    var transactions = store.Transactions - before;
    Report($"batched (round {round})", result);
    Console.WriteLine($"    {transactions} transactions, {(double)commits / transactions:F1} commits per transaction");
}

static async Task ChurnAsync(string etcdUrl, EtcdClient client, int etcdPid, int keys, int rounds, int compactEvery, int callers)
{
    var services = new ServiceCollection();
    services.AddLogging();
    services.AddEtcdSessionOwnership(o =>
    {
        o.ConnectionString = etcdUrl;
        o.ClusterId = "churn";
        o.MaxBatchDelay = TimeSpan.Zero;
    });
    await using var provider = services.BuildServiceProvider();
    var store = provider.GetRequiredService<ISessionOwnershipStore>();
    var compactor = provider.GetRequiredService<EtcdHistoryCompactor>();
    Console.WriteLine($"etcd {etcdUrl}: {keys} client ids reconnected {rounds} times ({(long)keys * rounds} commits), {callers} callers, "
        + (compactEvery > 0 ? $"history compacted every {compactEvery} rounds" : "history never compacted"));

    var revisions = new long[keys];
    var clock = Stopwatch.StartNew();
    for (var round = 1; round <= rounds; round++)
    {
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, Math.Min(callers, keys)).Select(_ => Task.Run(async () =>
        {
            int k;
            while ((k = Interlocked.Increment(ref next)) < keys)
            {
                var commit = await store.CommitAsync($"device-{k}", new SessionOwner("gateway-0", round, 1), revisions[k]);
                if (!commit.Committed)
                {
                    throw new InvalidOperationException($"device-{k} lost its record in round {round}");
                }

                revisions[k] = commit.Revision;
            }
        })));

        if (compactEvery > 0 && round % compactEvery == 0)
        {
            await compactor.RunRoundAsync(CancellationToken.None);
        }

        if (round % Math.Max(1, rounds / 5) == 0 || round == rounds)
        {
            var status = await client.StatusAsync(new StatusRequest());
            var rss = etcdPid == 0 ? "n/a" : $"{Process.GetProcessById(etcdPid).WorkingSet64 / 1048576.0:F1} MiB";
            Console.WriteLine($"  round {round,4}: {(long)keys * round / clock.Elapsed.TotalSeconds,8:N0} commits/s, revision {status.Header.Revision,9:N0}, "
                + $"db {status.DbSize / 1048576.0,7:F1} MiB (in use {status.DbSizeInUse / 1048576.0,7:F1} MiB), etcd RSS {rss}");
        }
    }
}

static async Task<Result> RunAsync(string run, int count, int callers, Func<string, Task<bool>> commit)
{
    var latencies = new double[count];
    var next = -1;
    var failed = 0;
    var clock = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
    {
        int i;
        while ((i = Interlocked.Increment(ref next)) < count)
        {
            var started = Stopwatch.GetTimestamp();
            if (!await commit($"{run}-{i}"))
            {
                Interlocked.Increment(ref failed);
            }

            latencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }
    })));
    var elapsed = clock.Elapsed;
    Array.Sort(latencies);
    return new Result(count / elapsed.TotalSeconds, latencies[count / 2], latencies[(int)(count * 0.99)], failed);
}

static void Report(string name, Result r) =>
    Console.WriteLine($"{name,-32} {r.PerSecond,10:N0} commits/s   latency p50 {r.P50,7:F2} ms   p99 {r.P99,7:F2} ms   not committed {r.Failed}");

static string Option(string[] args, string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

internal readonly record struct Result(double PerSecond, double P50, double P99, int Failed);
