using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Kestrel's memory pool in the gateway: 4 KB blocks on the pinned object heap, as Kestrel's own, but a block once
/// made is kept for the next rent instead of being let go when the pool has been idle for a while.
/// </summary>
/// <remarks>
/// Kestrel's pool gives idle blocks to the garbage collector (every 10 s, 5 % of them when nothing was rented, 1 % when
/// as many were rented as returned). Idle MQTT clients ping in waves, each PINGREQ and PINGRESP taking a block for a
/// moment, so every wave made new pinned blocks where the last one's had been let go, and the old ones stayed on the
/// pinned heap until a full collection: the gateway's memory grew through an idle hold with no live object more
/// (docs/benchmarks.md, "The gateway's bytes per idle connection"). Kept, the blocks are the most the transports had
/// rented at once, and that is what Kestrel's pool holds after every wave of pings anyway.
/// </remarks>
internal sealed class RetainingMemoryPool : MemoryPool<byte>
{
    /// <summary>The size of every block, Kestrel's: larger rents are refused, and pipes then use arrays of their own.</summary>
    public const int BlockSize = 4096;

    private readonly ConcurrentQueue<Block> _idle = new();
    private int _made;
    private volatile bool _disposed;

    /// <inheritdoc />
    public override int MaxBufferSize => BlockSize;

    /// <summary>Blocks this pool has made so far: the most it has had rented at once.</summary>
    public int BlocksMade => Volatile.Read(ref _made);

    /// <summary>Blocks returned and waiting for the next rent.</summary>
    public int BlocksIdle => _idle.Count;

    /// <inheritdoc />
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_idle.TryDequeue(out var block))
        {
            return block;
        }

        Interlocked.Increment(ref _made);
        return new Block(this);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        _disposed = true;
        _idle.Clear();
    }

    private void Return(Block block)
    {
        if (!_disposed)
        {
            _idle.Enqueue(block);
        }
    }

    /// <summary>One block: its memory is marked as pinned, so a socket operation pins it without a GC handle.</summary>
    private sealed class Block(RetainingMemoryPool pool) : IMemoryOwner<byte>
    {
        public Memory<byte> Memory { get; } = MemoryMarshal.CreateFromPinnedArray(GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true), 0, BlockSize);

        public void Dispose() => pool.Return(this);
    }
}

/// <summary>Makes a <see cref="RetainingMemoryPool"/> for each of Kestrel's transports (registered in place of Kestrel's factory).</summary>
internal sealed class RetainingMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    /// <inheritdoc />
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new RetainingMemoryPool();
}
