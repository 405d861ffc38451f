using System.Text.Json;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>One span as a broker process wrote it to its <c>Tracing:FilePath</c> file.</summary>
public sealed record SpanRecord(
    string File,
    string TraceId,
    string SpanId,
    string? ParentSpanId,
    string Name,
    string Source,
    string Kind,
    long Start,
    long End,
    string Status,
    int Pid,
    IReadOnlyDictionary<string, JsonElement> Attributes)
{
    /// <summary>An attribute as text (numbers as their JSON text); null when absent.</summary>
    public string? Attribute(string name) => Attributes.TryGetValue(name, out var value)
        ? value.ValueKind == JsonValueKind.String ? value.GetString() : value.GetRawText()
        : null;
}

/// <summary>Reads the span files of broker processes.</summary>
public static class SpanFiles
{
    /// <summary>Every span written so far to <paramref name="files"/> (a file not yet written counts as empty).</summary>
    public static List<SpanRecord> Read(params string[] files)
    {
        var spans = new List<SpanRecord>();
        foreach (var file in files)
        {
            if (!File.Exists(file))
            {
                continue;
            }

            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            while (reader.ReadLine() is { } line)
            {
                // The last line may be half written while a process appends.
                if (!line.EndsWith('}'))
                {
                    continue;
                }

                using var json = JsonDocument.Parse(line);
                var root = json.RootElement;
                spans.Add(new SpanRecord(
                    file,
                    root.GetProperty("traceId").GetString()!,
                    root.GetProperty("spanId").GetString()!,
                    root.GetProperty("parentSpanId").GetString(),
                    root.GetProperty("name").GetString()!,
                    root.GetProperty("source").GetString()!,
                    root.GetProperty("kind").GetString()!,
                    root.GetProperty("startUnixMicros").GetInt64(),
                    root.GetProperty("endUnixMicros").GetInt64(),
                    root.GetProperty("status").GetString()!,
                    root.GetProperty("pid").GetInt32(),
                    root.GetProperty("attributes").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone())));
            }
        }

        return spans;
    }

    /// <summary>
    /// Reads <paramref name="files"/> until <paramref name="complete"/> holds for what they hold, or fails after
    /// <paramref name="timeout"/> with what was found.
    /// </summary>
    public static async Task<List<SpanRecord>> WaitAsync(string[] files, Func<List<SpanRecord>, bool> complete, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var spans = Read(files);
            if (complete(spans))
            {
                return spans;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("Spans not all written; found:\n" + string.Join('\n', spans.Select(s => $"{s.File}: {s.TraceId} {s.SpanId} <- {s.ParentSpanId} '{s.Name}'")));
            }

            // A process writes its spans as they end; a file offers no signal to wait on.
            await Task.Delay(50);
        }
    }
}
