using System.Diagnostics;
using System.Globalization;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Clustering.Tests;
using Orleans.Mqtt.Ownership.Etcd;
using static Etcdserverpb.Compare.Types;

// Session commits per second to etcd: the batching store against one single-operation transaction per commit.
//   dotnet run -c Release --project test/Orleans.Mqtt.Ownership.Bench [-- --etcd http://127.0.0.1:2379] [--commits 20000] [--callers 256] [--delay-ms 2]
// Without --etcd it starts a throwaway etcd (/usr/bin/etcd) on free loopback ports.
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

Console.WriteLine($"etcd {etcdUrl}, {commits} commits of distinct client ids, {callers} concurrent callers, batch delay {delay.TotalMilliseconds} ms, {Environment.ProcessorCount} cores");

using var client = new EtcdClient(etcdUrl, configureChannelOptions: o => o.Credentials = ChannelCredentials.Insecure);
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
