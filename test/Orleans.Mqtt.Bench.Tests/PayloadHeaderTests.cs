using System.Buffers;
using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

public sealed class PayloadHeaderTests
{
    [Fact]
    public void RoundTripsThroughAContiguousPayload()
    {
        var buffer = new byte[100];
        var header = new PayloadHeader(42, 123_456_789_012, 987_654_321_098, 987_654_322_000);
        header.WriteTo(buffer);

        Assert.True(PayloadHeader.TryRead(new ReadOnlySequence<byte>(buffer), out var read));
        Assert.Equal(header, read);
    }

    [Fact]
    public void RoundTripsThroughASegmentedPayload()
    {
        var buffer = new byte[PayloadHeader.Size + 8];
        var header = new PayloadHeader(7, 3, 99, 101);
        header.WriteTo(buffer);
        var first = new Segment(buffer.AsMemory(0, 5), 0);
        var last = first.Append(buffer.AsMemory(5));

        Assert.True(PayloadHeader.TryRead(new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length), out var read));
        Assert.Equal(header, read);
    }

    [Fact]
    public void RejectsShortAndForeignPayloads()
    {
        Assert.False(PayloadHeader.TryRead(new ReadOnlySequence<byte>(new byte[PayloadHeader.Size - 1]), out _));
        Assert.False(PayloadHeader.TryRead(new ReadOnlySequence<byte>(new byte[PayloadHeader.Size]), out _));
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
