using System.Buffers;
using System.Buffers.Binary;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>A record read from <see cref="FasterStore"/>: the version and payload in a pooled buffer.</summary>
internal readonly struct StoredRecord : IDisposable
{
    private readonly IMemoryOwner<byte>? _owner;
    private readonly int _length;

    public StoredRecord(IMemoryOwner<byte>? owner, int length)
    {
        _owner = owner;
        _length = length;
    }

    /// <summary>Whether a record was found.</summary>
    public bool Found => _owner is not null;

    /// <summary>The version stored with the record.</summary>
    public long Version => BinaryPrimitives.ReadInt64LittleEndian(_owner!.Memory.Span);

    /// <summary>The stored payload; valid until the record is disposed.</summary>
    public ReadOnlyMemory<byte> Payload => _owner!.Memory[sizeof(long).._length];

    /// <inheritdoc />
    public void Dispose() => _owner?.Dispose();
}
