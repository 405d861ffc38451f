using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

public sealed class LatencyHistogramTests
{
    [Fact]
    public void EmptyHistogramReportsZero()
    {
        var histogram = new LatencyHistogram();
        Assert.Equal(0, histogram.ValueAtPercentile(50));
        Assert.Equal(0, histogram.Max);
        Assert.Equal(0, histogram.Min);
        Assert.Equal(0, histogram.Mean);
    }

    [Fact]
    public void SmallValuesAreExact()
    {
        var histogram = new LatencyHistogram();
        for (var value = 1; value <= 100; value++)
        {
            histogram.Record(value);
        }

        Assert.Equal(50, histogram.ValueAtPercentile(50));
        Assert.Equal(90, histogram.ValueAtPercentile(90));
        Assert.Equal(99, histogram.ValueAtPercentile(99));
        Assert.Equal(100, histogram.ValueAtPercentile(100));
        Assert.Equal(1, histogram.Min);
        Assert.Equal(50.5, histogram.Mean, 6);
    }

    [Theory]
    [InlineData(128L)]
    [InlineData(1_000L)]
    [InlineData(123_456L)]
    [InlineData(987_654_321L)]
    [InlineData(long.MaxValue / 3)]
    public void LargeValuesAreWithinOneSixtyFourthAbove(long value)
    {
        var histogram = new LatencyHistogram();
        histogram.Record(value);
        histogram.Record(value * 2);

        var reported = histogram.ValueAtPercentile(50);
        Assert.InRange(reported, value, value + value / 64);
    }

    [Fact]
    public void BucketsAreContiguousAndIncreasing()
    {
        long previousHighest = -1;
        for (var index = 0; index < 2000; index++)
        {
            var highest = LatencyHistogram.HighestInBucket(index);
            Assert.True(highest > previousHighest);
            Assert.Equal(index, LatencyHistogram.IndexOf(previousHighest + 1));
            Assert.Equal(index, LatencyHistogram.IndexOf(highest));
            previousHighest = highest;
        }

        Assert.Equal(LatencyHistogram.IndexOf(long.MaxValue), LatencyHistogram.IndexOf(long.MaxValue - 1));
    }

    [Fact]
    public void PercentilesOfAUniformSpreadAreClose()
    {
        var histogram = new LatencyHistogram();
        for (long value = 1; value <= 1_000_000; value++)
        {
            histogram.Record(value * 1000);
        }

        AssertClose(500_000_000, histogram.ValueAtPercentile(50));
        AssertClose(990_000_000, histogram.ValueAtPercentile(99));
        Assert.Equal(1_000_000_000, histogram.ValueAtPercentile(100));
        Assert.Equal(1_000_000_000, histogram.Max);
    }

    [Fact]
    public void MaxIsExactAndCapsPercentiles()
    {
        var histogram = new LatencyHistogram();
        histogram.Record(1_000_001);
        Assert.Equal(1_000_001, histogram.ValueAtPercentile(99.9));
        Assert.Equal(1_000_001, histogram.Max);
    }

    [Fact]
    public void NegativeValuesCountAsZero()
    {
        var histogram = new LatencyHistogram();
        histogram.Record(-5);
        Assert.Equal(1, histogram.Count);
        Assert.Equal(0, histogram.Max);
        Assert.Equal(0, histogram.ValueAtPercentile(50));
    }

    [Fact]
    public void AddMergesCountsAndExtremes()
    {
        var a = new LatencyHistogram();
        var b = new LatencyHistogram();
        for (var i = 0; i < 90; i++)
        {
            a.Record(10);
        }

        for (var i = 0; i < 10; i++)
        {
            b.Record(10_000);
        }

        var merged = new LatencyHistogram();
        merged.Add(a);
        merged.Add(b);
        Assert.Equal(100, merged.Count);
        Assert.Equal(10, merged.Min);
        Assert.Equal(10_000, merged.Max);
        Assert.Equal(10, merged.ValueAtPercentile(90));
        AssertClose(10_000, merged.ValueAtPercentile(91));
    }

    private static void AssertClose(long expected, long actual)
    {
        Assert.InRange(actual, expected, expected + expected / 64);
    }

    [Fact]
    public void ExportedBucketsMergeIntoTheSamePercentiles()
    {
        var source = new LatencyHistogram();
        for (var value = 1L; value <= 100_000; value += 7)
        {
            source.Record(value * 1000);
        }

        var merged = new LatencyHistogram();
        foreach (var bucket in source.Export())
        {
            merged.AddBucket((int)bucket[0], bucket[1]);
        }

        Assert.Equal(source.Count, merged.Count);
        Assert.Equal(source.ValueAtPercentile(50), merged.ValueAtPercentile(50));
        Assert.Equal(source.ValueAtPercentile(99), merged.ValueAtPercentile(99));
        Assert.InRange(merged.Max, source.Max, source.Max * 65 / 64);
    }
}
