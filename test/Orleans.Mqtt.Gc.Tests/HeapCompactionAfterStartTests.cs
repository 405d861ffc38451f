using System.Runtime.CompilerServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Hosting;
using Xunit;

namespace Orleans.Mqtt.Gc.Tests;

/// <summary>
/// The one compacting collection once the host has started: what starting the process left free on the pinned heap
/// (a silo's storage copies its first checkpoint through pinned buffers) is given back to the system.
/// </summary>
public sealed class HeapCompactionAfterStartTests
{
    private const int Buffers = 24;
    private const int BufferBytes = 4 << 20;

    [Fact]
    public async Task Pinned_buffers_dropped_before_the_host_started_are_given_back_once_it_has()
    {
        using var trims = new HeapTrimsCounter();
        var lifetime = new StartedSignal();
        // The periodic checks an hour apart: only the collection at start can run in this test.
        using var trimmer = new HeapTrimmer(
            Options.Create(new MqttBrokerOptions { HeapTrimInterval = TimeSpan.FromHours(1) }), trims.Metrics, NullLogger<HeapTrimmer>.Instance, lifetime);

        var committedWithBuffers = PinnedBuffersThatDie();
        await trimmer.StartAsync(CancellationToken.None);
        Assert.False(trims.FirstTrim.IsCompleted, "the collection ran before the host had started");

        lifetime.Started();
        await trims.FirstTrim.WaitAsync(TimeSpan.FromSeconds(30));
        var committed = GC.GetGCMemoryInfo(GCKind.Any).TotalCommittedBytes;
        await trimmer.StopAsync(CancellationToken.None);

        const long garbage = (long)Buffers * BufferBytes;
        Assert.True(
            committed < committedWithBuffers - garbage * 3 / 4,
            $"committed {committedWithBuffers >> 20} MiB with the buffers alive, {committed >> 20} MiB after the collection at start");
    }

    // Pinned buffers that live through a full collection and die on return; the memory the heap had committed then.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static long PinnedBuffersThatDie()
    {
        var buffers = new byte[Buffers][];
        for (var i = 0; i < buffers.Length; i++)
        {
            buffers[i] = GC.AllocateArray<byte>(BufferBytes, pinned: true);
            buffers[i].AsSpan().Fill(1);
        }

        GC.Collect();
        GC.KeepAlive(buffers);
        return GC.GetGCMemoryInfo(GCKind.Any).TotalCommittedBytes;
    }

    private sealed class StartedSignal : IHostApplicationLifetime
    {
        private readonly CancellationTokenSource _started = new();

        public CancellationToken ApplicationStarted => _started.Token;

        public CancellationToken ApplicationStopping => CancellationToken.None;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void Started() => _started.Cancel();

        public void StopApplication()
        {
        }
    }
}
