namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>Where the built broker is, relative to this test assembly's build configuration.</summary>
public static class Paths
{
    public static string RepositoryRoot { get; } = FindRoot();

    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";

    public static string StandaloneDll { get; } = Path.Combine(
        RepositoryRoot, "src", "Orleans.Mqtt.Standalone", "bin", Configuration, "net10.0", "Orleans.Mqtt.Standalone.dll");

    public static string SiloDll { get; } = Path.Combine(
        RepositoryRoot, "silo", "Orleans.Mqtt.Silo", "bin", Configuration, "net10.0", "Orleans.Mqtt.Silo.dll");

    public static string GatewayDll { get; } = Path.Combine(
        RepositoryRoot, "gateway", "Orleans.Mqtt.Gateway", "bin", Configuration, "net10.0", "Orleans.Mqtt.Gateway.dll");

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Orleans.Mqtt.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Orleans.Mqtt.sln not found above " + AppContext.BaseDirectory);
    }
}
