using System.Threading.RateLimiting;
using BenchmarkDotNet.Attributes;
using Orleans.Mqtt.Gateway;

namespace Orleans.Mqtt.Benchmarks;

/// <summary>
/// The per-PUBLISH cost of a rate check, as a connection's read loop pays it: the gateway's <see cref="TokenBucket"/>
/// (through <see cref="PublishRateLimit"/>, message and byte buckets) against System.Threading.RateLimiting's
/// <see cref="TokenBucketRateLimiter"/> (one lease per call, replenished by <c>TryReplenish</c> as a timer would). The
/// limits are far above the call rate, so every check passes, as for a client within its rate.
/// </summary>
[MemoryDiagnoser]
public class RateLimiterBenchmarks
{
    private PublishRateLimit _ours = null!;
    private TokenBucket _oursMessagesOnly = null!;
    private TokenBucketRateLimiter _library = null!;

    [GlobalSetup]
    public void Setup()
    {
        _ours = PublishRateLimit.Create(new LimitsOptions { MessagesPerSecond = 1e12, BytesPerSecond = 1e15 }, TimeProvider.System)!;
        _oursMessagesOnly = new TokenBucket(1e12, 0, TimeProvider.System);
        _library = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = int.MaxValue,
            TokensPerPeriod = int.MaxValue,
            ReplenishmentPeriod = TimeSpan.FromMilliseconds(1),
            AutoReplenishment = false,
            QueueLimit = 0,
        });
    }

    [GlobalCleanup]
    public void Cleanup() => _library.Dispose();

    [Benchmark(Baseline = true)]
    public bool TokenBucket_messages()
    {
        return _oursMessagesOnly.TryTake(TimeProvider.System.GetTimestamp(), 1);
    }

    [Benchmark]
    public bool PublishRateLimit_messages_and_bytes()
    {
        return _ours.TryAcquire(TimeProvider.System.GetTimestamp(), 100);
    }

    [Benchmark]
    public bool TokenBucketRateLimiter_messages()
    {
        _library.TryReplenish();
        using var lease = _library.AttemptAcquire(1);
        return lease.IsAcquired;
    }
}
