namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>A test that runs for minutes: skipped unless <see cref="Minutes"/> is set (as bench/chaos.sh does).</summary>
public sealed class SoakFactAttribute : FactAttribute
{
    /// <summary>The environment variable that gives the run's length in minutes.</summary>
    public const string Minutes = "CHAOS_MINUTES";

    public SoakFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(Minutes)))
        {
            Skip = $"a long run: bench/chaos.sh sets {Minutes}";
        }
    }
}
