using System.Text;
using System.Text.RegularExpressions;
using CsCheck;
using Orleans.Mqtt.Topics;
using Xunit;

namespace Orleans.Mqtt.Tests.Topics;

public sealed class TopicIndexTests
{
    // A small alphabet so that random filters and topics collide often; "$x" exercises the '$' rule at the first level.
    private static readonly Gen<string> GenTopic =
        Gen.OneOf("a", "b", "c", "", "$x").Array[1, 5].Select(levels => string.Join('/', levels))
            .Where(topic => topic.Length > 0);

    private static readonly Gen<string> GenFilter = Gen.Select(
        Gen.OneOf("a", "b", "c", "", "$x", "+", "+").Array[1, 5],
        Gen.Int[0, 2],
        (levels, multiLevel) => multiLevel switch
        {
            0 => string.Join('/', levels),
            1 => string.Join('/', levels) + "/#",
            _ => string.Join('/', levels[..^1].Append("#")),
        }).Where(filter => filter.Length > 0);

    private static readonly Gen<(string[] Filters, string[] Topics)> GenCase =
        Gen.Select(GenFilter.Array[0, 40], GenTopic.Array[1, 20]);

    [Fact]
    public void MatchEqualsNaiveMatchOfEveryFilter()
    {
        GenCase.Sample((filters, topics) =>
        {
            var index = new TopicIndex<int>();
            for (var i = 0; i < filters.Length; i++)
            {
                Assert.True(index.Add(filters[i], i));
                Assert.False(index.Add(filters[i], i));
            }

            Assert.Equal(filters.Length, index.Count);
            AssertMatchesOracle(index, filters, Enumerable.Range(0, filters.Length), topics);
        }, iter: 1000);
    }

    [Fact]
    public void MatchesAgreesWithReferenceMatcher()
    {
        Gen.Select(GenFilter, GenTopic).Sample((filter, topic) =>
            Assert.Equal(ReferenceMatches(filter, topic), MqttTopic.Matches(filter, topic)), iter: 5000);
    }

    [Fact]
    public void EntriesReturnsEveryAddedEntry()
    {
        GenFilter.Array[0, 40].Sample(filters =>
        {
            var index = new TopicIndex<int>();
            for (var i = 0; i < filters.Length; i++)
            {
                index.Add(filters[i], i);
            }

            var expected = filters.Select((filter, i) => (filter, i)).Order().ToList();
            Assert.Equal(expected, index.Entries.Select(e => (e.Filter, e.Value)).Order().ToList());
        }, iter: 500);
    }

    [Fact]
    public void AddThenRemoveEverythingLeavesNothing()
    {
        GenCase.Sample((filters, topics) =>
        {
            var index = new TopicIndex<int>();
            for (var i = 0; i < filters.Length; i++)
            {
                index.Add(filters[i], i);
            }

            // Remove the odd entries first and check the rest still match exactly.
            for (var i = 1; i < filters.Length; i += 2)
            {
                Assert.True(index.Remove(filters[i], i));
                Assert.False(index.Remove(filters[i], i));
            }

            var even = Enumerable.Range(0, filters.Length).Where(i => i % 2 == 0).ToList();
            Assert.Equal(even.Count, index.Count);
            AssertMatchesOracle(index, filters, even, topics);

            for (var i = filters.Length - 1; i >= 0; i -= 1)
            {
                Assert.Equal(i % 2 == 0, index.Remove(filters[i], i));
            }

            Assert.Equal(0, index.Count);
            Assert.Empty(index.Entries);
            Assert.True(index.IsTrieEmpty);
            var results = new List<int>();
            foreach (var topic in topics)
            {
                index.Match(topic, results);
            }

            Assert.Empty(results);
        }, iter: 1000);
    }

    [Fact]
    public void SameFilterHoldsManyValuesAndCollapsesBack()
    {
        var index = new TopicIndex<string>(StringComparer.OrdinalIgnoreCase);
        Assert.True(index.Add("a/+", "x"));
        Assert.True(index.Add("a/+", "y"));
        Assert.False(index.Add("a/+", "Y"));
        Assert.True(index.Add("a/b", "x"));
        Assert.True(index.Add("a/b", "y"));
        Assert.Equal(4, index.Count);

        var results = new List<string>();
        index.Match("a/b", results);
        Assert.Equal(["x", "x", "y", "y"], results.Order());

        Assert.True(index.Remove("a/+", "X"));
        Assert.True(index.Remove("a/b", "y"));
        results.Clear();
        index.Match("a/b", results);
        Assert.Equal(["x", "y"], results.Order());
    }

    [Fact]
    public void MatchAppendsWithoutClearing()
    {
        var index = new TopicIndex<int>();
        index.Add("a", 1);
        var results = new List<int> { 7 };
        index.Match("a", results);
        Assert.Equal([7, 1], results);
    }

    [Fact]
    public void MatchDoesNotAllocate()
    {
        var index = new TopicIndex<int>();
        index.Add("a/b/c", 1);
        index.Add("a/b/c", 2);
        index.Add("a/+/c", 3);
        index.Add("a/#", 4);
        index.Add("+/b/#", 5);
        index.Add("+/+/+", 6);
        var results = new List<int>(16);

        // The first call rents this thread's pooled traversal stack.
        index.Match("a/b/c", results);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            results.Clear();
            index.Match("a/b/c", results);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal([1, 2, 3, 4, 5, 6], results.Order());
    }

    [Fact]
    public void RejectsInvalidFilters()
    {
        var index = new TopicIndex<int>();
        Assert.Throws<ArgumentException>(() => index.Add("a/#/b", 1));
        Assert.Throws<ArgumentException>(() => index.Add("", 1));
        Assert.False(index.Remove("a+", 1));
        Assert.Equal(0, index.Count);
    }

    [Fact]
    public void DeepFiltersDoNotExhaustTheStack()
    {
        const int depth = 2000;
        var topic = string.Join('/', Enumerable.Repeat("a", depth));
        var index = new TopicIndex<int>();
        index.Add(topic, 1);
        index.Add(string.Join('/', Enumerable.Repeat("+", depth)), 2);
        index.Add(string.Join('/', Enumerable.Repeat("a", depth - 1)) + "/#", 3);
        index.Add(string.Join('/', Enumerable.Repeat("+", depth + 1)), 4);

        var results = new List<int>();
        index.Match(topic, results);
        Assert.Equal([1, 2, 3], results.Order());
        Assert.Equal(4, index.Entries.Count());
    }

    private static void AssertMatchesOracle(TopicIndex<int> index, string[] filters, IEnumerable<int> present, string[] topics)
    {
        var results = new List<int>();
        foreach (var topic in topics)
        {
            results.Clear();
            index.Match(topic, results);
            var expected = present.Where(i => ReferenceMatches(filters[i], topic)).Order().ToList();
            Assert.Equal(expected, results.Order().ToList());
        }
    }

    /// <summary>
    /// An independent oracle: the filter becomes a regular expression, with '+' as "any run without '/'" and a final
    /// '#' as "optionally '/' and anything"; the '$' rule is checked on its own.
    /// </summary>
    private static bool ReferenceMatches(string filter, string topic)
    {
        if (topic.StartsWith('$') && (filter.StartsWith('+') || filter.StartsWith('#')))
        {
            return false;
        }

        var levels = filter.Split('/');
        var endsWithMultiLevel = levels[^1] == "#";
        var fixedLevels = endsWithMultiLevel ? levels[..^1] : levels;
        var pattern = new StringBuilder("^");
        pattern.Append(string.Join('/', fixedLevels.Select(level => level == "+" ? "[^/]*" : Regex.Escape(level))));
        if (endsWithMultiLevel)
        {
            pattern.Append(fixedLevels.Length == 0 ? ".*" : "(/.*)?");
        }

        pattern.Append(@"\z");
        return Regex.IsMatch(topic, pattern.ToString(), RegexOptions.Singleline | RegexOptions.CultureInvariant);
    }
}
