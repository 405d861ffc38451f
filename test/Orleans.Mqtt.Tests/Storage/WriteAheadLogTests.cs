using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Mqtt.Silo.Storage;
using Xunit;

namespace Orleans.Mqtt.Tests.Storage;

public sealed class WriteAheadLogTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "orleans-mqtt-tests", Guid.NewGuid().ToString("N"));

    [Fact]
    public void Records_come_back_in_order_over_segments_and_deleted_segments_are_gone()
    {
        using (var log = Open(out var replayed))
        {
            Assert.Empty(replayed);
            log.AppendUpsert("a"u8, 1, "one"u8);
            log.AppendDelete("b"u8);
            log.Flush();
            var cut = log.Cut();
            log.AppendUpsert("a"u8, 2, "two"u8);
            log.AppendUpsert("c"u8, 7, ReadOnlySpan<byte>.Empty);
            log.Flush();

            Assert.Equal(2, Segments().Length);
            log.DeleteBefore(cut);
            Assert.Single(Segments());
            log.AppendUpsert("d"u8, 3, "buffered, never flushed"u8);
        }

        using (Open(out var replayed))
        {
            Assert.Equal(["upsert a 2 two", "upsert c 7 "], replayed);
        }
    }

    [Fact]
    public void A_damaged_record_ends_its_segment_and_the_next_segment_is_still_read()
    {
        using (var log = Open(out _))
        {
            log.AppendUpsert("a"u8, 1, "kept"u8);
            log.AppendUpsert("b"u8, 1, "damaged"u8);
            log.AppendUpsert("c"u8, 1, "after the damage in the same segment"u8);
            log.Flush();
            log.Cut();
            log.AppendDelete("a"u8);
            log.Flush();
        }

        // Flip one byte of the second record's payload: its checksum no longer matches.
        var first = Segments()[0];
        var bytes = File.ReadAllBytes(first);
        var at = Encoding.ASCII.GetString(bytes).IndexOf("damaged", StringComparison.Ordinal);
        bytes[at] ^= 0xff;
        File.WriteAllBytes(first, bytes);

        using (var log = Open(out var replayed))
        {
            Assert.Equal(["upsert a 1 kept", "delete a 0 "], replayed);

            // New records go to a segment after every one on disk.
            log.AppendUpsert("e"u8, 5, "new"u8);
            log.Flush();
        }

        using (Open(out var again))
        {
            Assert.Equal(["upsert a 1 kept", "delete a 0 ", "upsert e 5 new"], again);
        }
    }

    [Fact]
    public void Segments_allocated_ahead_replay_to_their_last_record_without_a_warning()
    {
        var big = new byte[(int)(WriteAheadLog.PreallocationBytes * 3 / 4)];
        big.AsSpan().Fill((byte)'x');
        var warnings = new WarningLog();
        using (var log = Open(out _, warnings))
        {
            log.AppendUpsert("a"u8, 1, "one"u8);
            log.Flush();
            if (OperatingSystem.IsLinux())
            {
                Assert.Equal(WriteAheadLog.PreallocationBytes, new FileInfo(Segments().Single()).Length);
            }

            // Two large records: the second one crosses the allocated end, and the segment grows by another chunk.
            log.AppendUpsert("b"u8, 2, big);
            log.Flush();
            log.AppendUpsert("c"u8, 3, big);
            log.Flush();
            if (OperatingSystem.IsLinux())
            {
                Assert.Equal(2 * WriteAheadLog.PreallocationBytes, new FileInfo(Segments().Single()).Length);
            }
        }

        using (var log = Open(out var replayed, warnings))
        {
            Assert.Equal(["upsert a 1 one", $"upsert b 2 {big.Length} bytes", $"upsert c 3 {big.Length} bytes"], replayed);
            log.AppendDelete("a"u8);
            log.Flush();
        }

        // The records after the restart went to a segment of their own, after the first one's last record.
        Assert.Equal(2, Segments().Length);
        using (Open(out var again, warnings))
        {
            Assert.Equal(["upsert a 1 one", $"upsert b 2 {big.Length} bytes", $"upsert c 3 {big.Length} bytes", "delete a 0 "], again);
        }

        Assert.Empty(warnings.Messages);
    }

    [Fact]
    public void A_record_cut_short_before_the_allocated_tail_is_reported()
    {
        using (var log = Open(out _))
        {
            log.AppendUpsert("a"u8, 1, "kept"u8);
            log.AppendUpsert("b"u8, 1, "cut short"u8);
            log.Flush();
        }

        // Zero the end of the second record, as a crash during its write would leave it in an allocated segment.
        var path = Segments().Single();
        var bytes = File.ReadAllBytes(path);
        var at = Encoding.ASCII.GetString(bytes).IndexOf("short", StringComparison.Ordinal);
        bytes.AsSpan(at, 5).Clear();
        File.WriteAllBytes(path, bytes);

        var warnings = new WarningLog();
        using (Open(out var replayed, warnings))
        {
            Assert.Equal(["upsert a 1 kept"], replayed);
        }

        Assert.Contains(warnings.Messages, m => m.Contains("not a whole record", StringComparison.Ordinal));
    }

    [Fact]
    public void Checksum_is_crc32c()
    {
        // The CRC-32C check value (RFC 3720, B.4: 32 bytes of zeros).
        Assert.Equal(0x8A9136AAu, WriteAheadLog.Checksum(new byte[32]));
        Assert.Equal(0xE3069283u, WriteAheadLog.Checksum("123456789"u8));
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private WriteAheadLog Open(out List<string> replayed, ILogger? logger = null)
    {
        var log = new WriteAheadLog(_directory, logger ?? NullLogger.Instance);
        var records = new List<string>();
        log.Replay((operation, key, version, payload) => records.Add(
            $"{operation.ToString().ToLowerInvariant()} {Encoding.UTF8.GetString(key)} {version} " +
            (payload.Length > 1000 ? $"{payload.Length} bytes" : Encoding.UTF8.GetString(payload))));
        log.StartSegment();
        replayed = records;
        return log;
    }

    private string[] Segments() => Directory.GetFiles(_directory, "*.wal").OrderBy(path => path).ToArray();

    private sealed class WarningLog : ILogger
    {
        public List<string> Messages { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                Messages.Add(formatter(state, exception));
            }
        }
    }
}
