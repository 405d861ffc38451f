using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>The byte budget of a connection's outbox (<c>Mqtt:MaxPendingWriteBytes</c>).</summary>
public sealed class OutboxBudgetTests
{
    private const long Budget = 1000;

    [Fact]
    public void Items_over_the_budget_are_refused_and_the_outbox_keeps_its_weight_exact()
    {
        var outbox = new BytesOutbox();
        Assert.True(outbox.TryWrite(new byte[600], Budget, out var start, out var over));
        Assert.True(start);
        Assert.False(over);

        // 600 + 600 is over 1000: refused, nothing queued.
        Assert.False(outbox.TryWrite(new byte[600], Budget, out _, out over));
        Assert.True(over);
        Assert.Equal(600, outbox.QueuedWeight);

        // 600 + 400 fits exactly.
        Assert.True(outbox.TryWrite(new byte[400], Budget, out _, out over));
        Assert.False(over);
        Assert.Equal(1000, outbox.QueuedWeight);

        // Reading frees budget.
        Assert.True(outbox.TryRead(out var first));
        Assert.Equal(600, first.Length);
        Assert.Equal(400, outbox.QueuedWeight);
        Assert.True(outbox.TryWrite(new byte[600], Budget, out _, out over));
        Assert.False(over);
    }

    [Fact]
    public void An_item_larger_than_the_budget_still_goes_into_an_empty_outbox()
    {
        var outbox = new BytesOutbox();
        Assert.True(outbox.TryWrite(new byte[5000], Budget, out _, out var over));
        Assert.False(over);
        Assert.False(outbox.TryWrite(new byte[1], Budget, out _, out over));
        Assert.True(over);
    }

    [Fact]
    public void Weightless_items_are_never_refused()
    {
        var outbox = new BytesOutbox();
        Assert.True(outbox.TryWrite(new byte[Budget], Budget, out _, out _));
        Assert.True(outbox.TryWrite([], Budget, out _, out var over));
        Assert.False(over);
    }

    [Fact]
    public void Stopping_releases_what_was_queued_and_reports_its_weight()
    {
        var outbox = new BytesOutbox();
        for (var i = 0; i < 10; i++)
        {
            outbox.TryWrite(new byte[100], long.MaxValue, out _, out _);
        }

        Assert.Equal(1000, outbox.Stop());
        Assert.Equal(0, outbox.QueuedWeight);
        Assert.False(outbox.TryRead(out _));

        // A stopped outbox refuses writes, and not for budget reasons.
        Assert.False(outbox.TryWrite(new byte[1], Budget, out _, out var over));
        Assert.False(over);
    }

    private sealed class BytesOutbox : ConnectionOutbox<byte[]>
    {
        protected override long WeightOf(byte[] item) => item.Length;
    }
}
