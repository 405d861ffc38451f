using System.Buffers;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>
/// A buffer writer over one array rented from <see cref="ArrayPool{T}.Shared"/>, grown by renting a larger one: a
/// record serialized for <see cref="FasterStore"/>, in one piece, for as long as its write takes. <see cref="FasterStore.Upsert"/>
/// copies the bytes into the log, so the array goes back to the pool once the write returned.
/// </summary>
/// <remarks>
/// Orleans' <c>OrleansGrainStorageSerializer</c> and <c>Serializer.SerializeToArray</c> build each payload in a growing
/// array of their own and then copy it out: for a session of a few hundred bytes, three to five arrays per save, three
/// saves per persistent connect with its subscription and disconnect.
/// </remarks>
internal sealed class PooledPayloadWriter : IBufferWriter<byte>, IDisposable
{
    private const int InitialSize = 1024;

    private byte[] _buffer;
    private int _written;

    /// <summary>A writer with an array of at least <paramref name="sizeHint"/> bytes (1 KiB when not given).</summary>
    public PooledPayloadWriter(int sizeHint = InitialSize)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(sizeHint, 1));
    }

    /// <summary>The bytes written so far; valid until the writer is disposed or written to again.</summary>
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _written);

    /// <inheritdoc />
    public void Advance(int count)
    {
        if ((uint)count > (uint)(_buffer.Length - _written))
        {
            throw new ArgumentOutOfRangeException(nameof(count));
        }

        _written += count;
    }

    /// <inheritdoc />
    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsMemory(_written);
    }

    /// <inheritdoc />
    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsSpan(_written);
    }

    /// <summary>Returns the array to the pool.</summary>
    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        _written = 0;
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Reserve(int sizeHint)
    {
        var needed = Math.Max(sizeHint, 1);
        if (_buffer.Length - _written >= needed)
        {
            return;
        }

        var grown = ArrayPool<byte>.Shared.Rent(Math.Max(_written + needed, _buffer.Length * 2));
        _buffer.AsSpan(0, _written).CopyTo(grown);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = grown;
    }
}
