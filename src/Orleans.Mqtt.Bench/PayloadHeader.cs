using System.Buffers;
using System.Buffers.Binary;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// The fixed header at the start of every bench payload: a marker, the publisher index, the
/// per-publisher sequence number, the scheduled and the actual send time in <see cref="System.Diagnostics.Stopwatch"/>
/// ticks. The rest of the payload is padding up to the requested size.
/// </summary>
/// <param name="Publisher">Index of the publisher in its run.</param>
/// <param name="Sequence">Per-publisher sequence number, starting at 0.</param>
/// <param name="Timestamp">Scheduled send time at a fixed rate, else the send time, in Stopwatch ticks.</param>
/// <param name="Sent">When the tool wrote the message to its socket buffer, in Stopwatch ticks.</param>
internal readonly record struct PayloadHeader(int Publisher, long Sequence, long Timestamp, long Sent)
{
    /// <summary>Size of the header in bytes; the smallest payload the tool can send.</summary>
    public const int Size = 32;

    // "MQB2" little-endian: lets the subscriber reject payloads that are not ours (or of the 24-byte layout).
    private const uint Marker = 0x3242514D;

    /// <summary>Writes the header into the first <see cref="Size"/> bytes of <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Marker);
        BinaryPrimitives.WriteInt32LittleEndian(destination[4..], Publisher);
        BinaryPrimitives.WriteInt64LittleEndian(destination[8..], Sequence);
        BinaryPrimitives.WriteInt64LittleEndian(destination[16..], Timestamp);
        BinaryPrimitives.WriteInt64LittleEndian(destination[24..], Sent);
    }

    /// <summary>Reads a header from the start of a contiguous payload.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out PayloadHeader header)
    {
        if (source.Length < Size || BinaryPrimitives.ReadUInt32LittleEndian(source) != Marker)
        {
            header = default;
            return false;
        }

        header = new PayloadHeader(
            BinaryPrimitives.ReadInt32LittleEndian(source[4..]),
            BinaryPrimitives.ReadInt64LittleEndian(source[8..]),
            BinaryPrimitives.ReadInt64LittleEndian(source[16..]),
            BinaryPrimitives.ReadInt64LittleEndian(source[24..]));
        return true;
    }

    /// <summary>Reads a header from the start of a payload that may be split into segments.</summary>
    public static bool TryRead(in ReadOnlySequence<byte> source, out PayloadHeader header)
    {
        var first = source.FirstSpan;
        if (first.Length >= Size)
        {
            return TryRead(first, out header);
        }

        if (source.Length < Size)
        {
            header = default;
            return false;
        }

        Span<byte> copy = stackalloc byte[Size];
        source.Slice(0, Size).CopyTo(copy);
        return TryRead(copy, out header);
    }
}
