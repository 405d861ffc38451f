using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>
/// The write-ahead log of <see cref="FasterStore"/>: every upsert and delete is appended to a buffer in memory,
/// and a commit writes the buffer to the current segment file and syncs it to disk. The log is cut into segments
/// at each full checkpoint of the store; segments older than the latest full checkpoint are deleted.
/// </summary>
/// <remarks>
/// <para>
/// A segment is named by its start position (a byte offset that grows over all segments) and holds records of
/// <c>[int32 body length][uint32 CRC-32C of the body][body]</c>, the body being <c>[operation][int32 key length]
/// [key][int64 version][payload]</c>. Reading a segment stops at the first record that is cut short or whose
/// checksum does not match: the tail of a write that a crash interrupted.
/// </para>
/// <para>
/// On Linux a segment is allocated ahead of its writes, <see cref="PreallocationBytes"/> at a time, and a commit
/// syncs with <c>fdatasync</c>: a write inside the allocated space changes no size or block map, so the sync writes
/// the data alone (about 30 % less CPU and 15 % less time per commit than appending and <c>fsync</c>, measured in
/// docs/benchmarks-history.md, "Where each target of issue Fast stands"). The unwritten tail of a segment reads as zeros, which ends its replay like the end of the file.
/// </para>
/// </remarks>
internal sealed partial class WriteAheadLog : IDisposable
{
    private const string Extension = ".wal";
    private const int HeaderSize = sizeof(int) + sizeof(uint);
    private const int RetainedBufferBytes = 1 << 20;

    /// <summary>How much of a segment is allocated at a time, ahead of its writes (Linux).</summary>
    internal const long PreallocationBytes = 8L * 1024 * 1024;

    private readonly string _directory;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();

    // Guarded by _gate: records appended since the last write, and where they will start on disk.
    private byte[] _pending = new byte[64 * 1024];
    private int _pendingLength;
    private long _position;

    // Touched by the one thread that writes (the store's commit loop), or before it starts and after it ends.
    private byte[] _writing = new byte[64 * 1024];
    private SafeFileHandle? _segment;
    private long _segmentStart;
    private long _segmentWritten;
    private long _segmentAllocated;
    private bool _preallocate = OperatingSystem.IsLinux();

    public WriteAheadLog(string directory, ILogger logger)
    {
        _directory = directory;
        _logger = logger;
    }

    /// <summary>Bytes in the current segment, written or waiting to be written.</summary>
    public long SegmentLength
    {
        get
        {
            lock (_gate)
            {
                return _position + _pendingLength - _segmentStart;
            }
        }
    }

    /// <summary>
    /// Reads every record of the segments on disk, oldest first, and hands each to <paramref name="apply"/>.
    /// Returns the number of records read. Call before <see cref="StartSegment"/>.
    /// </summary>
    public long Replay(WalRecordVisitor apply)
    {
        Directory.CreateDirectory(_directory);
        long records = 0;
        var buffer = new byte[64 * 1024];
        foreach (var (start, path) in Segments())
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
            long offset = 0;
            while (true)
            {
                var header = buffer.AsSpan(0, HeaderSize);
                var headerRead = stream.ReadAtLeast(header, HeaderSize, throwOnEndOfStream: false);
                if (headerRead == 0)
                {
                    break;
                }

                var length = BinaryPrimitives.ReadInt32LittleEndian(header);
                var checksum = BinaryPrimitives.ReadUInt32LittleEndian(header[sizeof(int)..]);
                if (headerRead == HeaderSize && length == 0 && checksum == 0)
                {
                    // The allocated space after the last write.
                    break;
                }

                if (headerRead < HeaderSize || length < 1 + sizeof(int) + sizeof(long) || length > stream.Length - offset - HeaderSize)
                {
                    LogTornTail(_logger, path, offset, stream.Length - offset);
                    break;
                }

                if (buffer.Length < length)
                {
                    buffer = new byte[BitOperations.RoundUpToPowerOf2((uint)length)];
                }

                var body = buffer.AsSpan(0, length);
                if (stream.ReadAtLeast(body, length, throwOnEndOfStream: false) < length || Checksum(body) != checksum)
                {
                    LogTornTail(_logger, path, offset, stream.Length - offset);
                    break;
                }

                var operation = (WalOperation)body[0];
                var keyLength = BinaryPrimitives.ReadInt32LittleEndian(body[1..]);
                var versionAt = 1 + sizeof(int) + keyLength;
                if (keyLength < 0 || versionAt + sizeof(long) > length || operation is not (WalOperation.Upsert or WalOperation.Delete))
                {
                    throw new InvalidDataException($"Write-ahead log segment {path} holds a record at offset {offset} with a valid checksum but a malformed body.");
                }

                apply(operation, body.Slice(1 + sizeof(int), keyLength), BinaryPrimitives.ReadInt64LittleEndian(body[versionAt..]), body[(versionAt + sizeof(long))..]);
                records++;
                offset += HeaderSize + length;
            }

            // Where this segment's records end: its allocated or damaged tail is never read again.
            _position = Math.Max(_position, start + offset);
        }

        return records;
    }

    /// <summary>
    /// Starts a new segment after everything on disk (its file is created by the first write): records appended
    /// from now on go there. Call once, after <see cref="Replay"/> and before the first append.
    /// </summary>
    public void StartSegment()
    {
        lock (_gate)
        {
            _segmentStart = _position;
        }
    }

    /// <summary>Appends an upsert of <paramref name="key"/> to the buffer; it is durable after the next <see cref="Flush"/>.</summary>
    public void AppendUpsert(ReadOnlySpan<byte> key, long version, ReadOnlySpan<byte> payload) =>
        Append(WalOperation.Upsert, key, version, payload);

    /// <summary>Appends a delete of <paramref name="key"/> to the buffer; it is durable after the next <see cref="Flush"/>.</summary>
    public void AppendDelete(ReadOnlySpan<byte> key) => Append(WalOperation.Delete, key, 0, default);

    /// <summary>Writes what was appended before this call to the current segment and syncs it to disk.</summary>
    public void Flush()
    {
        var length = TakePending(out var end);
        Write(length, end);
    }

    /// <summary>
    /// Flushes the current segment and starts a new one. Returns the new segment's start: every record appended
    /// after this call lies at or beyond it.
    /// </summary>
    public long Cut()
    {
        var length = TakePending(out var next);
        Write(length, next);
        if (next != _segmentStart)
        {
            _segment?.Dispose();
            _segment = null;
            _segmentStart = next;
        }

        return next;
    }

    /// <summary>Deletes the segments that end before <paramref name="position"/> (all of them lie in a checkpoint).</summary>
    public void DeleteBefore(long position)
    {
        foreach (var (start, path) in Segments())
        {
            if (start >= position)
            {
                break;
            }

            File.Delete(path);
        }
    }

    /// <summary>Closes the current segment without writing what is still buffered (as a crash would).</summary>
    public void Dispose()
    {
        _segment?.Dispose();
        _segment = null;
    }

    private void Append(WalOperation operation, ReadOnlySpan<byte> key, long version, ReadOnlySpan<byte> payload)
    {
        var bodyLength = 1 + sizeof(int) + key.Length + sizeof(long) + payload.Length;
        lock (_gate)
        {
            var needed = _pendingLength + HeaderSize + bodyLength;
            if (needed > _pending.Length)
            {
                Array.Resize(ref _pending, (int)Math.Min(Array.MaxLength, BitOperations.RoundUpToPowerOf2((uint)needed)));
            }

            var record = _pending.AsSpan(_pendingLength, HeaderSize + bodyLength);
            var body = record[HeaderSize..];
            body[0] = (byte)operation;
            BinaryPrimitives.WriteInt32LittleEndian(body[1..], key.Length);
            key.CopyTo(body[(1 + sizeof(int))..]);
            BinaryPrimitives.WriteInt64LittleEndian(body[(1 + sizeof(int) + key.Length)..], version);
            payload.CopyTo(body[(1 + sizeof(int) + key.Length + sizeof(long))..]);
            BinaryPrimitives.WriteInt32LittleEndian(record, bodyLength);
            BinaryPrimitives.WriteUInt32LittleEndian(record[sizeof(int)..], Checksum(body));
            _pendingLength += record.Length;
        }
    }

    /// <summary>Swaps the buffers: the appended records move to <see cref="_writing"/>; returns their length.</summary>
    private int TakePending(out long end)
    {
        lock (_gate)
        {
            (_writing, _pending) = (_pending, _writing);
            var length = _pendingLength;
            _pendingLength = 0;
            _position += length;
            end = _position;
            return length;
        }
    }

    /// <summary>Writes the taken records, which end at position <paramref name="end"/>, and syncs them to disk.</summary>
    private void Write(int length, long end)
    {
        if (length > 0)
        {
            try
            {
                _segment ??= CreateSegment(_segmentStart);
                Reserve(_segment, _segmentWritten + length);
                RandomAccess.Write(_segment, _writing.AsSpan(0, length), _segmentWritten);
                _segmentWritten += length;
                SyncData(_segment);
            }
            catch
            {
                // A write cut short leaves bytes that reading stops at, so later records go to a new segment.
                _segment?.Dispose();
                _segment = null;
                _segmentStart = end;
                throw;
            }
        }

        if (_writing.Length > RetainedBufferBytes)
        {
            _writing = new byte[64 * 1024];
        }
    }

    private SafeFileHandle CreateSegment(long start)
    {
        var path = Path.Combine(_directory, start.ToString("x16", CultureInfo.InvariantCulture) + Extension);
        // A segment is created where the records on disk end, so a file of that name holds no record to keep.
        var segment = File.OpenHandle(path, FileMode.Create, FileAccess.Write, FileShare.Read);
        try
        {
            if (OperatingSystem.IsLinux())
            {
                // The new file's name has to survive a crash too, or the commits in it are lost with it.
                Native.SyncDirectory(_directory);
            }
        }
        catch
        {
            segment.Dispose();
            throw;
        }

        _segmentWritten = 0;
        _segmentAllocated = 0;
        return segment;
    }

    /// <summary>Allocates the segment up to at least <paramref name="end"/> bytes, a chunk at a time (Linux).</summary>
    private void Reserve(SafeFileHandle segment, long end)
    {
        if (!_preallocate || end <= _segmentAllocated)
        {
            return;
        }

        var size = (end + PreallocationBytes - 1) / PreallocationBytes * PreallocationBytes;
        var error = Native.Allocate(segment, _segmentAllocated, size - _segmentAllocated);
        if (error != 0)
        {
            // Not supported by this file system (or full): append as before; the sync then writes the size too.
            _preallocate = false;
            LogNoPreallocation(_logger, _directory, error);
            return;
        }

        _segmentAllocated = size;
    }

    private static void SyncData(SafeFileHandle segment)
    {
        if (OperatingSystem.IsLinux())
        {
            Native.SyncData(segment);
        }
        else
        {
            RandomAccess.FlushToDisk(segment);
        }
    }

    private IEnumerable<(long Start, string Path)> Segments() =>
        Directory.EnumerateFiles(_directory, "*" + Extension)
            .Select(path => (Start: long.TryParse(Path.GetFileNameWithoutExtension(path), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var start) ? start : -1, Path: path))
            .Where(segment => segment.Start >= 0)
            .OrderBy(segment => segment.Start)
            .ToList();

    /// <summary>CRC-32C (Castagnoli), with the processor's CRC instructions where it has them.</summary>
    internal static uint Checksum(ReadOnlySpan<byte> data)
    {
        var crc = uint.MaxValue;
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (var word in words)
        {
            crc = BitOperations.Crc32C(crc, word);
        }

        foreach (var b in data[(words.Length * sizeof(ulong))..])
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return ~crc;
    }

    [LoggerMessage(20, LogLevel.Warning, "Write-ahead log segment {Path} ends at offset {Offset} with bytes that are not a whole record (a write a crash cut short); the rest of the segment, {Bytes} bytes with any space allocated ahead, is ignored")]
    private static partial void LogTornTail(ILogger logger, string path, long offset, long bytes);

    [LoggerMessage(21, LogLevel.Warning, "Write-ahead log in {Directory}: the file system cannot allocate segments ahead (errno {Errno}); segments grow with each write, and each commit also syncs their size")]
    private static partial void LogNoPreallocation(ILogger logger, string directory, int errno);
}
