using Orleans.Mqtt.Silo.Storage;
using Xunit;

namespace Orleans.Mqtt.Tests.Storage;

public sealed class RecordSerializerTests
{
    [Fact]
    public async Task Each_record_is_the_bytes_of_SerializeToArray_whatever_came_before_on_the_thread()
    {
        await using var harness = new StorageTestHarness();
        var serializer = harness.Serializer;

        // A large one (past the kept buffer's bound), a small one, a mid-sized one, the small one again: the buffer of
        // the thread is reused or dropped, and no record carries bytes of the one before.
        string[] values = [new string('x', 100_000), "a", new string('y', 3000), "a"];
        foreach (var value in values)
        {
            var bytes = RecordSerializer.Serialize(serializer, value);
            Assert.Equal(serializer.SerializeToArray(value), bytes);
            Assert.Equal(value, serializer.Deserialize<string>(bytes));
        }
    }
}
