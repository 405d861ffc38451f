using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Numerics;
using FASTER.core;
using Session = FASTER.core.ClientSession<
    FASTER.core.SpanByte,
    FASTER.core.SpanByte,
    FASTER.core.SpanByte,
    FASTER.core.SpanByteAndMemory,
    FASTER.core.Empty,
    FASTER.core.SpanByteFunctions<FASTER.core.Empty>>;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>The records of <see cref="FasterStore"/>: reads, writes and deletes, each change applied to FASTER and appended to
/// the write-ahead log under its key's stripe lock; the pool of FASTER sessions; replaying the log on open.</summary>
internal sealed partial class FasterStore
{
    private readonly SpanByteFunctions<Empty> _functions = new(MemoryPool<byte>.Shared);
    private readonly ConcurrentBag<Session> _sessions = new();

    /// <summary>Reads the record stored under <paramref name="key"/>, from memory or from disk.</summary>
    public async ValueTask<StoredRecord> ReadAsync(byte[] key, int keyLength)
    {
        var session = RentSession();
        var healthy = false;
        try
        {
            var result = await StartRead(session, key, keyLength).ConfigureAwait(false);
            var (status, output) = result.Complete();
            healthy = true;
            if (!status.Found)
            {
                output.Memory?.Dispose();
                return default;
            }

            return new StoredRecord(output.Memory, output.Length);
        }
        finally
        {
            ReturnSession(session, healthy);
        }
    }

    /// <summary>
    /// As <see cref="Upsert"/>, with at most one writer per core inside FASTER at a time. A write that finds the
    /// in-memory log full spins until older pages are flushed, and the flush completes on a thread-pool thread: with
    /// every pool thread spinning in a write, nothing completes the flush (seen with 64 concurrent writers on
    /// 2 cores). Waiting writers wait here without holding a thread.
    /// </summary>
    public async ValueTask UpsertAsync(byte[] key, int keyLength, long version, ReadOnlyMemory<byte> payload)
    {
        await _writers.WaitAsync().ConfigureAwait(false);
        try
        {
            Upsert(key, keyLength, version, payload.Span);
        }
        finally
        {
            _writers.Release();
        }
    }

    /// <summary>As <see cref="Delete"/>, with the writer limit of <see cref="UpsertAsync"/>.</summary>
    public async ValueTask DeleteAsync(byte[] key, int keyLength)
    {
        await _writers.WaitAsync().ConfigureAwait(false);
        try
        {
            Delete(key, keyLength);
        }
        finally
        {
            _writers.Release();
        }
    }

    /// <summary>Writes <paramref name="payload"/> with <paramref name="version"/> under <paramref name="key"/>, in memory.</summary>
    public void Upsert(byte[] key, int keyLength, long version, ReadOnlySpan<byte> payload)
    {
        var valueLength = VersionSize + payload.Length;
        if (keyLength + valueLength > _maxRecordSize)
        {
            throw new InvalidOperationException(
                $"A grain state of {payload.Length} bytes does not fit in one FASTER log page; the largest is about {_maxRecordSize - keyLength - VersionSize} bytes. Raise Storage:MemorySizeBytes.");
        }

        var buffer = ArrayPool<byte>.Shared.Rent(valueLength);
        try
        {
            Interlocked.Increment(ref _changesSinceFullCheckpoint);
            var value = StoredValue(buffer, version, payload);
            var keySpan = key.AsSpan(0, keyLength);
            var session = RentSession();
            var healthy = false;
            try
            {
                lock (Stripe(keySpan))
                {
                    UpsertCore(session, keySpan, value);
                    _log.AppendUpsert(keySpan, version, payload);
                }

                healthy = true;
            }
            finally
            {
                ReturnSession(session, healthy);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Deletes the record stored under <paramref name="key"/>, in memory.</summary>
    public void Delete(byte[] key, int keyLength)
    {
        Interlocked.Increment(ref _changesSinceFullCheckpoint);
        var keySpan = key.AsSpan(0, keyLength);
        var session = RentSession();
        var healthy = false;
        try
        {
            lock (Stripe(keySpan))
            {
                DeleteCore(session, keySpan);
                _log.AppendDelete(keySpan);
            }

            healthy = true;
        }
        finally
        {
            ReturnSession(session, healthy);
        }
    }

    /// <summary>Calls <paramref name="visit"/> with the key, version and payload of every live record.</summary>
    public void ForEach(RecordVisitor visit)
    {
        var session = RentSession();
        var healthy = false;
        try
        {
            using (var iterator = session.Iterate())
            {
                while (iterator.GetNext(out _))
                {
                    var value = iterator.GetValue().AsReadOnlySpan();
                    visit(iterator.GetKey().AsReadOnlySpan(), BinaryPrimitives.ReadInt64LittleEndian(value), value[VersionSize..]);
                }
            }

            healthy = true;
        }
        finally
        {
            ReturnSession(session, healthy);
        }
    }

    private static unsafe ValueTask<FasterKV<SpanByte, SpanByte>.ReadAsyncResult<SpanByte, SpanByteAndMemory, Empty>> StartRead(
        Session session, byte[] key, int keyLength)
    {
        // The key only has to stay pinned while the call runs: a read that goes pending copies it.
        fixed (byte* keyPointer = key)
        {
            var keySpan = SpanByte.FromPointer(keyPointer, keyLength);
            return session.ReadAsync(ref keySpan);
        }
    }

    private static unsafe void UpsertCore(Session session, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        fixed (byte* keyPointer = key)
        fixed (byte* valuePointer = value)
        {
            var keySpan = SpanByte.FromPointer(keyPointer, key.Length);
            var valueSpan = SpanByte.FromPointer(valuePointer, value.Length);
            var status = session.Upsert(ref keySpan, ref valueSpan);
            if (status.IsPending)
            {
                session.CompletePending(wait: true);
            }
        }
    }

    private static unsafe void DeleteCore(Session session, ReadOnlySpan<byte> key)
    {
        fixed (byte* keyPointer = key)
        {
            var keySpan = SpanByte.FromPointer(keyPointer, key.Length);
            var status = session.Delete(ref keySpan);
            if (status.IsPending)
            {
                session.CompletePending(wait: true);
            }
        }
    }

    /// <summary>A value as the store holds it, written into <paramref name="buffer"/>: the version, then the payload.</summary>
    private static ReadOnlySpan<byte> StoredValue(byte[] buffer, long version, ReadOnlySpan<byte> payload)
    {
        BinaryPrimitives.WriteInt64LittleEndian(buffer, version);
        payload.CopyTo(buffer.AsSpan(VersionSize));
        return buffer.AsSpan(0, VersionSize + payload.Length);
    }

    private Lock Stripe(ReadOnlySpan<byte> key) => _stripes[WriteAheadLog.Checksum(key) & (Stripes - 1)];

    /// <summary>Applies the write-ahead log's records to the recovered (or empty) store; returns how many.</summary>
    private long ReplayLog()
    {
        var session = RentSession();
        var buffer = new byte[256];
        try
        {
            var replayed = _log.Replay((operation, key, version, payload) =>
            {
                if (operation == WalOperation.Delete)
                {
                    DeleteCore(session, key);
                    return;
                }

                if (buffer.Length < VersionSize + payload.Length)
                {
                    buffer = new byte[BitOperations.RoundUpToPowerOf2((uint)(VersionSize + payload.Length))];
                }

                UpsertCore(session, key, StoredValue(buffer, version, payload));
            });
            Interlocked.Add(ref _changesSinceFullCheckpoint, replayed);
            return replayed;
        }
        finally
        {
            ReturnSession(session, healthy: true);
        }
    }

    private Session RentSession()
    {
        var store = _store ?? throw new InvalidOperationException("The grain storage is not open.");
        return _sessions.TryTake(out var session)
            ? session
            : store.For(_functions).NewSession<SpanByteFunctions<Empty>>();
    }

    private void ReturnSession(Session session, bool healthy)
    {
        // A session whose operation threw may hold pending work; do not hand it to another caller.
        if (healthy)
        {
            _sessions.Add(session);
        }
        else
        {
            session.Dispose();
        }
    }

    private void DisposeSessions()
    {
        while (_sessions.TryTake(out var session))
        {
            session.Dispose();
        }
    }
}
