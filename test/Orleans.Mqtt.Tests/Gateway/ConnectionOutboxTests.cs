using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

public sealed class ConnectionOutboxTests
{
    [Fact]
    public void Only_the_write_that_finds_no_drain_starts_one_and_the_drain_reads_in_order()
    {
        var outbox = new ConnectionOutbox<int>();
        Assert.True(outbox.TryWrite(1, out var first));
        Assert.True(outbox.TryWrite(2, out var second));
        Assert.True(first);
        Assert.False(second);

        Assert.True(outbox.TryRead(out var a));
        Assert.True(outbox.TryRead(out var b));
        Assert.False(outbox.TryRead(out _));
        Assert.Equal((1, 2), (a, b));
        Assert.True(outbox.TryEndDrain());

        // Idle again: the next write starts the next drain.
        Assert.True(outbox.TryWrite(3, out var third));
        Assert.True(third);
    }

    [Fact]
    public void Writes_that_come_one_at_a_time_allocate_nothing()
    {
        var packet = (1L, "pingresp");

        // Plain checks inside the measured loop: the assertions' comparers may allocate.
        bool OneWriteOneDrain(ConnectionOutbox<(long, string)> outbox) =>
            outbox.TryWrite(packet, out var start) && start
            && outbox.TryRead(out var item) && item.Item1 == packet.Item1 && ReferenceEquals(item.Item2, packet.Item2)
            && !outbox.TryRead(out _)
            && outbox.TryEndDrain();

        // Warm up the code on another outbox; measure from this one's first write on.
        Assert.True(OneWriteOneDrain(new ConnectionOutbox<(long, string)>()));
        var outbox = new ConnectionOutbox<(long, string)>();
        var failed = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            failed += OneWriteOneDrain(outbox) ? 0 : 1;
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, failed);

        // An idle connection holds no queue for its CONNACK, SUBACK and PINGRESPs (a queue and its array: 160 bytes).
        Assert.Equal(0, allocated);

        // A burst still goes out whole and in order.
        outbox.TryWrite((2, "a"), out _);
        outbox.TryWrite((3, "b"), out _);
        outbox.TryWrite((4, "c"), out _);
        var read = new List<long>();
        while (outbox.TryRead(out var item))
        {
            read.Add(item.Item1);
        }

        Assert.Equal([2L, 3L, 4L], read);
        Assert.True(outbox.TryEndDrain());
    }

    [Fact]
    public void A_drain_goes_on_when_a_write_came_in_after_its_last_read()
    {
        var outbox = new ConnectionOutbox<int>();
        outbox.TryWrite(1, out _);
        Assert.True(outbox.TryRead(out _));

        // Written while the drain was flushing: no new drain is started, so this one must not end.
        Assert.True(outbox.TryWrite(2, out var start));
        Assert.False(start);
        Assert.False(outbox.TryEndDrain());
        Assert.True(outbox.TryRead(out var item));
        Assert.Equal(2, item);
        Assert.True(outbox.TryEndDrain());
    }

    [Fact]
    public async Task Completing_waits_for_the_running_drain_and_refuses_later_writes()
    {
        var outbox = new ConnectionOutbox<string>();
        outbox.TryWrite("last packet", out _);
        var completed = outbox.CompleteAsync();
        Assert.False(completed.IsCompleted);
        Assert.False(outbox.TryWrite("too late", out var start));
        Assert.False(start);

        Assert.True(outbox.TryRead(out var item));
        Assert.Equal("last packet", item);
        Assert.False(completed.IsCompleted);
        Assert.True(outbox.TryEndDrain());
        await completed.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.True(new ConnectionOutbox<int>().CompleteAsync().IsCompleted);
    }

    [Fact]
    public async Task Stopping_drops_what_is_queued_and_releases_a_waiting_completion()
    {
        var outbox = new ConnectionOutbox<int>();
        outbox.TryWrite(1, out _);
        outbox.TryWrite(2, out _);
        var completed = outbox.CompleteAsync();
        outbox.Stop();
        await completed.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(outbox.TryRead(out _));
        Assert.False(outbox.TryWrite(3, out _));
    }

    [Fact]
    public async Task Every_item_of_concurrent_writers_is_read_once_in_each_writers_order_by_drains_started_on_demand()
    {
        const int Writers = 4;
        const int PerWriter = 20_000;
        var outbox = new ConnectionOutbox<(int Writer, int Sequence)>();
        var next = new int[Writers];
        var read = 0;
        var drains = 0;
        var running = 0;
        var failures = 0;

        void Drain()
        {
            if (Interlocked.Increment(ref running) != 1)
            {
                // Two drains at once would interleave one connection's writes.
                Interlocked.Increment(ref failures);
            }

            Interlocked.Increment(ref drains);
            do
            {
                while (outbox.TryRead(out var item))
                {
                    if (next[item.Writer]++ != item.Sequence)
                    {
                        Interlocked.Increment(ref failures);
                    }

                    read++;
                }
            }
            while (!EndDrain());
        }

        bool EndDrain()
        {
            // Not running from here on: once TryEndDrain answers true, the next write may start another drain.
            Interlocked.Decrement(ref running);
            if (outbox.TryEndDrain())
            {
                return true;
            }

            Interlocked.Increment(ref running);
            return false;
        }

        // In rounds, each waiting until the drains have caught up, so drains end and are started again.
        const int Rounds = 200;
        for (var round = 0; round < Rounds; round++)
        {
            var from = round * (PerWriter / Rounds);
            await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(() =>
            {
                for (var i = from; i < from + (PerWriter / Rounds); i++)
                {
                    Assert.True(outbox.TryWrite((w, i), out var start));
                    if (start)
                    {
                        ThreadPool.QueueUserWorkItem(_ => Drain());
                    }
                }
            })));

            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (Volatile.Read(ref read) < Writers * (from + (PerWriter / Rounds)) && DateTime.UtcNow < deadline)
            {
                await Task.Yield();
            }
        }

        await outbox.CompleteAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, failures);
        Assert.Equal(Writers * PerWriter, Volatile.Read(ref read));
        Assert.All(next, n => Assert.Equal(PerWriter, n));
        Assert.True(drains > 1, "every write found a drain running: the test did not exercise restarts");
    }
}
