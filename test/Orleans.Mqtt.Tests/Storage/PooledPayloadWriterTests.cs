using Orleans.Mqtt.Silo.Storage;
using Xunit;

namespace Orleans.Mqtt.Tests.Storage;

public sealed class PooledPayloadWriterTests
{
    [Fact]
    public void Bytes_written_past_the_first_array_come_back_whole_and_in_order()
    {
        using var writer = new PooledPayloadWriter(sizeHint: 16);
        var expected = new byte[5000];
        for (var i = 0; i < expected.Length; i++)
        {
            expected[i] = (byte)(i * 31);
        }

        // Pieces of uneven sizes, so the writer grows mid-way through several of them.
        var written = 0;
        for (var piece = 1; written < expected.Length; piece = piece * 3 % 97 + 1)
        {
            var count = Math.Min(piece, expected.Length - written);
            var span = writer.GetSpan(count);
            Assert.True(span.Length >= count);
            expected.AsSpan(written, count).CopyTo(span);
            writer.Advance(count);
            written += count;
        }

        Assert.Equal(expected, writer.WrittenMemory.ToArray());
    }

    [Fact]
    public void Advancing_past_the_space_handed_out_is_refused()
    {
        using var writer = new PooledPayloadWriter(sizeHint: 8);
        var available = writer.GetSpan(8).Length;
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.Advance(available + 1));
    }

    [Fact]
    public async Task An_Orleans_serialized_value_is_the_bytes_of_SerializeToArray()
    {
        await using var harness = new StorageTestHarness();
        var serializer = harness.Serializer;
        var value = new string('x', 3000);
        using var writer = new PooledPayloadWriter();
        serializer.Serialize(value, writer);

        Assert.Equal(serializer.SerializeToArray(value), writer.WrittenMemory.ToArray());
        Assert.Equal(value, serializer.Deserialize<string>(writer.WrittenMemory));
    }
}
