using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Benchmarks;

/// <summary>
/// What the 1M-filter index of <see cref="TopicIndexBenchmarks"/> keeps on the heap: live bytes after a full,
/// compacting collection, measured with and without the filter strings themselves (a broker holds those anyway, in the
/// subscriptions of its sessions, so the index's own cost is the figure without them).
/// </summary>
internal static class TopicIndexRetainedSize
{
    public static void Report(TextWriter output)
    {
        const int filterCount = 1_000_000;
        var baseline = LiveBytes();
        var filters = FilterSet.Generate(filterCount, new Random(42));
        var withStrings = LiveBytes();

        var index = new TopicIndex<int>();
        for (var i = 0; i < filters.Length; i++)
        {
            index.Add(filters[i], i);
        }

        var withIndex = LiveBytes();
        var strings = withStrings - baseline;
        var ownBytes = withIndex - withStrings;
        output.WriteLine($"filters: {index.Count:N0}");
        output.WriteLine($"filter strings: {strings / 1e6:F1} MB ({strings / (double)filterCount:F0} B per filter)");
        output.WriteLine($"index without the strings: {ownBytes / 1e6:F1} MB ({ownBytes / (double)filterCount:F0} B per filter)");
        output.WriteLine($"index with the strings: {(ownBytes + strings) / 1e6:F1} MB");
        GC.KeepAlive(filters);
        GC.KeepAlive(index);
    }

    private static long LiveBytes()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        return GC.GetTotalMemory(forceFullCollection: false);
    }
}
