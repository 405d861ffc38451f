namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A test that needs a second build of the broker (a published silo and gateway of another commit): skipped unless
/// <see cref="OldBuild"/> names its directory, as <c>bench/rolling-upgrade.sh</c> does after building it.
/// </summary>
public sealed class UpgradeFactAttribute : FactAttribute
{
    /// <summary>The environment variable that names the other build's directory (<c>silo/</c> and <c>gateway/</c> below it).</summary>
    public const string OldBuild = "UPGRADE_OLD_BUILD";

    public UpgradeFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(OldBuild)))
        {
            Skip = $"needs a build of the last release: bench/rolling-upgrade.sh sets {OldBuild}";
        }
    }
}
