using BenchmarkDotNet.Attributes;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Benchmarks;

/// <summary>
/// The subscription index at the size the performance target names: one million five-level filters, 10 % of them
/// with '+' or '#' at a random level, and topics drawn so that each matches between 1 and 10 filters.
/// </summary>
[MemoryDiagnoser]
public class TopicIndexBenchmarks
{
    private const int Filters = 1_000_000;
    private const int Topics = 4096;
    private readonly List<int> _results = new(64);
    private TopicIndex<int> _index = null!;
    private string[] _topics = null!;
    private string[] _filters = null!;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        _filters = FilterSet.Generate(Filters, random);
        _index = new TopicIndex<int>();
        for (var i = 0; i < Filters; i++)
        {
            _index.Add(_filters[i], i);
        }

        // Topics equal to exact filters: each matches its own filter and the wildcard filters over it.
        _topics = new string[Topics];
        var chosen = 0;
        var matches = new List<int>();
        while (chosen < Topics)
        {
            var candidate = _filters[random.Next(Filters)];
            if (candidate.Contains('+') || candidate.Contains('#'))
            {
                continue;
            }

            matches.Clear();
            _index.Match(candidate, matches);
            if (matches.Count is >= 1 and <= 10)
            {
                _topics[chosen++] = candidate;
            }
        }
    }

    /// <summary>One match of a topic against the million filters.</summary>
    [Benchmark]
    public int Match()
    {
        _results.Clear();
        _index.Match(_topics[_next++ & (Topics - 1)], _results);
        return _results.Count;
    }

    /// <summary>Adding and removing one filter in the full index (a subscribe followed by an unsubscribe).</summary>
    [Benchmark]
    public bool AddRemove()
    {
        var filter = _filters[_next++ % Filters];
        _index.Add(filter, -1);
        return _index.Remove(filter, -1);
    }

    /// <summary>Topic name validation of a five-level topic.</summary>
    [Benchmark]
    public bool ValidateTopic() => MqttTopic.IsValidTopicName(_topics[_next++ & (Topics - 1)]);
}

/// <summary>Memory of the index: a separate benchmark that builds it, so the allocation column is the index itself.</summary>
[MemoryDiagnoser]
public class TopicIndexBuildBenchmarks
{
    private string[] _filters = null!;

    [GlobalSetup]
    public void Setup() => _filters = FilterSet.Generate(1_000_000, new Random(42));

    /// <summary>Inserting one million filters into an empty index.</summary>
    [Benchmark]
    public int Build()
    {
        var index = new TopicIndex<int>();
        for (var i = 0; i < _filters.Length; i++)
        {
            index.Add(_filters[i], i);
        }

        return index.Count;
    }
}

/// <summary>Five-level filters of a device fleet (site/line/device/kind/metric), 10 % with a '+' or a trailing '#' at a random level below the site.</summary>
internal static class FilterSet
{
    public static string[] Generate(int count, Random random)
    {
        var filters = new string[count];
        var levels = new string[5];
        for (var i = 0; i < count; i++)
        {
            levels[0] = "site" + random.Next(100);
            levels[1] = "line" + random.Next(50);
            levels[2] = "dev" + (i / 10);
            levels[3] = "k" + random.Next(4);
            levels[4] = "m" + (i % 10);
            if (i % 10 == 0)
            {
                // One wildcard level below the site: '+' at levels 1-4, or '#' as the last level.
                var at = 1 + random.Next(4);
                if (at == 4 && random.Next(2) == 0)
                {
                    levels[at] = "#";
                }
                else
                {
                    levels[at] = "+";
                }
            }

            filters[i] = string.Join('/', levels);
        }

        return filters;
    }
}
