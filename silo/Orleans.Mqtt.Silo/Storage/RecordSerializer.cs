using System.Buffers;
using Orleans.Serialization;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>
/// Serializes a record for <see cref="FasterStore"/> into a buffer kept by the calling thread and returns a copy of
/// exactly the bytes written: one array of the record's size per write.
/// </summary>
/// <remarks>
/// Orleans' <c>OrleansGrainStorageSerializer</c> (and <c>Serializer.SerializeToArray</c>) build each payload in a new
/// growing buffer and hand out a copy or a wrapper of it: for a session of a few hundred bytes, three to four arrays and
/// two wrappers per save, three saves per persistent connect with its subscription and disconnect. A buffer rented from
/// the array pool instead would have to be held until the write's turn comes (<see cref="FasterStore.UpsertAsync"/>
/// waits for a writer slot); with a storm of saves waiting, more arrays are out than the pool keeps, and such a version
/// did not lower the bytes allocated per connect (docs/benchmarks.md, "The connect path: what a connect allocates").
/// The bytes are the same as through those: Orleans' binary serializer wraps nothing around them.
/// </remarks>
internal static class RecordSerializer
{
    // A thread's buffer grown past this (one very large session) is dropped after use rather than kept.
    private const int MaxKeptBytes = 64 * 1024;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    /// <summary>The bytes of <paramref name="value"/> serialized with <paramref name="serializer"/>, in an array of their size.</summary>
    public static byte[] Serialize<T>(Serializer serializer, T value)
    {
        var buffer = t_buffer ?? new ArrayBufferWriter<byte>(1024);
        t_buffer = null;
        buffer.ResetWrittenCount();
        serializer.Serialize(value, buffer);
        var bytes = buffer.WrittenSpan.ToArray();
        if (buffer.Capacity <= MaxKeptBytes)
        {
            t_buffer = buffer;
        }

        return bytes;
    }
}
