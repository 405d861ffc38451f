using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Orleans.BroadcastChannel;
using Orleans.Concurrency;
using Orleans.Mqtt.Grains;
using Orleans.TestingHost;

namespace Orleans.Mqtt.Benchmarks;

/// <summary>
/// Spreads one small change (300 bytes) over an in-process cluster of three silos in two ways and reports, for each,
/// the mean and percentile latency of one change and how many silos applied it: (a) one acknowledged call per silo
/// to a grain pinned on that silo, awaited together (what <c>ReplicaBroadcaster</c> does); (b) an Orleans broadcast
/// channel with acknowledged and with fire-and-forget delivery, its subscriber an implicit subscription.
/// </summary>
public static class ChannelComparison
{
    private const string AckedChannel = "acked";
    private const string FireAndForgetChannel = "fire-and-forget";
    private const string Namespace = "routes";
    private const int Warmup = 200;
    private const int Changes = 2000;

    /// <summary>Silo name to the number of changes grains on that silo applied, for the run being measured.</summary>
    internal static readonly ConcurrentDictionary<string, int> Applied = new();

    public static async Task Report(TextWriter output)
    {
        var builder = new InProcessTestClusterBuilder(3);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddPlacementDirector<SiloPinnedPlacement, SiloPinnedPlacementDirector>();
            silo.AddBroadcastChannel(AckedChannel, o => o.FireAndForgetDelivery = false);
            silo.AddBroadcastChannel(FireAndForgetChannel, o => o.FireAndForgetDelivery = true);
        });
        var cluster = builder.Build();
        try
        {
            await cluster.DeployAsync();
            var silo0 = cluster.GetSiloServiceProvider(cluster.Silos[0].SiloAddress);
            var grains = silo0.GetRequiredService<IGrainFactory>();
            var client = silo0.GetRequiredService<IClusterClient>();
            var silos = cluster.Silos.Select(s => s.SiloAddress.ToParsableString()).ToArray();
            var change = new Change("client-1", new byte[300]);

            output.WriteLine($"3 silos in process ({string.Join(", ", cluster.Silos.Select(s => s.Name))}), {Changes} changes of "
                + $"{change.Payload.Length} bytes each, sent from {cluster.Silos[0].Name}, one at a time");
            output.WriteLine("| Way | Mean (µs) | p50 (µs) | p99 (µs) | Silos reached (of 3) | Changes applied, by silo |");
            output.WriteLine("|---|---:|---:|---:|---:|---|");

            var replicas = silos.Select(s => grains.GetGrain<IPinnedReplicaGrain>(s)).ToArray();
            await Measure(output, "(a) acknowledged call per silo, Task.WhenAll", () => Task.WhenAll(replicas.Select(r => r.Apply(change))));

            foreach (var name in new[] { AckedChannel, FireAndForgetChannel })
            {
                var writer = client.GetBroadcastChannelProvider(name).GetChannelWriter<Change>(ChannelId.Create(Namespace, change.ClientId));
                await Measure(output, $"(b) broadcast channel, FireAndForgetDelivery={name == FireAndForgetChannel}", () => writer.Publish(change));
            }

            // As many channel ids as silos: still one subscriber grain per id, placed where placement puts it.
            var writers = Enumerable.Range(0, silos.Length)
                .Select(i => client.GetBroadcastChannelProvider(AckedChannel).GetChannelWriter<Change>(ChannelId.Create(Namespace, $"{change.ClientId}/{i}")))
                .ToArray();
            await Measure(output, "(b) broadcast channel, FireAndForgetDelivery=False, one channel id per silo, Task.WhenAll",
                () => Task.WhenAll(writers.Select(w => w.Publish(change))));
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }

    private static async Task Measure(TextWriter output, string way, Func<Task> spread)
    {
        for (var i = 0; i < Warmup; i++)
        {
            await spread();
        }

        // A fire-and-forget publish returns before delivery: count the applied changes once they stop arriving.
        await Settled();
        Applied.Clear();
        var times = new double[Changes];
        for (var i = 0; i < Changes; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await spread();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }

        await Settled();
        Array.Sort(times);
        var silos = Applied.Count(e => e.Value > 0);
        var counts = string.Join(", ", Applied.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key}: {e.Value}"));
        output.WriteLine($"| {way} | {times.Average():F0} | {times[Changes / 2]:F0} | {times[Changes * 99 / 100]:F0} | {silos} | {counts} |");
    }

    private static async Task Settled()
    {
        var last = -1;
        var total = Applied.Values.Sum();
        while (total != last)
        {
            last = total;
            await Task.Delay(200);
            total = Applied.Values.Sum();
        }
    }
}

/// <summary>One route change, about the size of a client's routes with a few filters.</summary>
[GenerateSerializer, Immutable]
public sealed record Change([property: Id(0)] string ClientId, [property: Id(1)] byte[] Payload);

/// <summary>A grain pinned to the silo its key names, applying a change there.</summary>
public interface IPinnedReplicaGrain : IGrainWithStringKey
{
    Task Apply(Change change);
}

[SiloPinnedPlacement]
[Reentrant]
internal sealed class PinnedReplicaGrain(ILocalSiloDetails silo) : Grain, IPinnedReplicaGrain
{
    public Task Apply(Change change)
    {
        ChannelComparison.Applied.AddOrUpdate(silo.Name, 1, static (_, n) => n + 1);
        return Task.CompletedTask;
    }
}

/// <summary>The implicit subscriber of the channel namespace: one activation per channel id, wherever it is placed.</summary>
[ImplicitChannelSubscription("routes")]
internal sealed class ChannelReplicaGrain(ILocalSiloDetails silo) : Grain, IGrainWithStringKey, IOnBroadcastChannelSubscribed
{
    public Task OnSubscribed(IBroadcastChannelSubscription streamSubscription) =>
        streamSubscription.Attach<Change>(Apply, static _ => Task.CompletedTask);

    private Task Apply(Change change)
    {
        ChannelComparison.Applied.AddOrUpdate(silo.Name, 1, static (_, n) => n + 1);
        return Task.CompletedTask;
    }
}
