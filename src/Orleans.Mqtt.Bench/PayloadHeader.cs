using System.Buffers;
using System.Buffers.Binary;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// The fixed header at the start of every bench payload: a marker, the publisher index, the
/// per-publisher sequence number and the send timestamp in <see cref="System.Diagnostics.Stopwatch"/> ticks.
/// The rest of the payload is padding up to the requested size.
/// </summary>
/// <param name="Publisher">Index of the publisher in its run.</param>
/// <param name="Sequence">Per-publisher sequence number, starting at 0.</param>
/// <param name="Timestamp">Send (or, at a fixed rate, scheduled send) time in Stopwatch ticks.</param>
internal readonly record struct PayloadHeader(int Publisher, long Sequence, long Timestamp)
{
    /// <summary>Size of the header in bytes; the smallest payload the tool can send.</summary>
    public const int Size = 24;

    // "MQB1" little-endian: lets the subscriber reject payloads that are not ours.
    private const uint Marker = 0x3142514D;

    /// <summary>Writes the header into the first <see cref="Size"/> bytes of <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Marker);
        BinaryPrimitives.WriteInt32LittleEndian(destination[4..], Publisher);
        BinaryPrimitives.WriteInt64LittleEndian(destination[8..], Sequence);
        BinaryPrimitives.WriteInt64LittleEndian(destination[16..], Timestamp);
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
            BinaryPrimitives.ReadInt64LittleEndian(source[16..]));
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
