using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

public sealed class ConnectionOutboxTests
{
    [Fact]
    public async Task A_waiting_reader_wakes_on_a_write_and_reads_in_order()
    {
        var outbox = new ConnectionOutbox<int>();
        var waiting = outbox.WaitToReadAsync().AsTask();
        Assert.False(waiting.IsCompleted);

        Assert.True(outbox.TryWrite(1));
        Assert.True(outbox.TryWrite(2));
        Assert.True(await waiting.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.True(outbox.TryRead(out var first));
        Assert.True(outbox.TryRead(out var second));
        Assert.False(outbox.TryRead(out _));
        Assert.Equal((1, 2), (first, second));
    }

    [Fact]
    public async Task Completing_lets_the_reader_drain_what_was_queued_then_refuses_writes()
    {
        var outbox = new ConnectionOutbox<string>();
        outbox.TryWrite("last packet");
        outbox.Complete();

        Assert.False(outbox.TryWrite("too late"));
        Assert.True(await outbox.WaitToReadAsync());
        Assert.True(outbox.TryRead(out var item));
        Assert.Equal("last packet", item);
        Assert.False(await outbox.WaitToReadAsync());
    }

    [Fact]
    public async Task Completing_wakes_a_waiting_reader_with_false()
    {
        var outbox = new ConnectionOutbox<int>();
        var waiting = outbox.WaitToReadAsync().AsTask();
        outbox.Complete();
        Assert.False(await waiting.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Every_item_of_concurrent_writers_is_read_once_in_each_writers_order()
    {
        const int Writers = 4;
        const int PerWriter = 50_000;
        var outbox = new ConnectionOutbox<(int Writer, int Sequence)>();
        var next = new int[Writers];
        var reader = Task.Run(async () =>
        {
            var read = 0;
            while (await outbox.WaitToReadAsync())
            {
                while (outbox.TryRead(out var item))
                {
                    Assert.Equal(next[item.Writer]++, item.Sequence);
                    read++;
                }
            }

            return read;
        });

        await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < PerWriter; i++)
            {
                Assert.True(outbox.TryWrite((w, i)));
            }
        })));
        outbox.Complete();

        Assert.Equal(Writers * PerWriter, await reader.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.All(next, n => Assert.Equal(PerWriter, n));
    }
}
