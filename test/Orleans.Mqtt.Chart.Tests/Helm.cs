using System.Diagnostics;

namespace Orleans.Mqtt.Chart.Tests;

/// <summary>
/// The helm binary (on PATH, or the one scripts/fetch-helm.sh put in .tools/helm) run against charts/orleans-mqtt.
/// </summary>
public static class Helm
{
    /// <summary>The release name every rendering uses.</summary>
    public const string Release = "mqtt";

    /// <summary>The namespace every rendering uses.</summary>
    public const string Namespace = "brokers";

    /// <summary>The Prometheus operator's kinds, passed as served API versions so the monitors render.</summary>
    public static readonly string[] MonitoringApis = ["monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PodMonitor"];

    public static string RepositoryRoot { get; } = FindRoot();

    public static string ChartDirectory { get; } = Path.Combine(RepositoryRoot, "charts", "orleans-mqtt");

    public static string ValuesDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "values");

    private static string Binary { get; } = FindBinary();

    /// <summary><c>helm template</c> with the given values files and served API versions; throws with helm's output when it fails.</summary>
    public static async Task<string> TemplateAsync(IEnumerable<string> valuesFiles, IEnumerable<string>? apiVersions = null, IEnumerable<string>? extraArgs = null)
    {
        var (exitCode, output, error) = await RunAsync(TemplateArgs(valuesFiles, apiVersions, extraArgs));
        return exitCode == 0 ? output : throw new HelmFailedException($"helm template failed ({exitCode}):\n{error}");
    }

    /// <summary>Runs <c>helm template</c> expecting it to fail; returns its error output.</summary>
    public static async Task<string> TemplateFailureAsync(string valuesFile)
    {
        var (exitCode, output, error) = await RunAsync(TemplateArgs([valuesFile], null, null));
        Assert.True(exitCode != 0, $"helm accepted {Path.GetFileName(valuesFile)}:\n{output[..Math.Min(output.Length, 400)]}");
        return error;
    }

    /// <summary><c>helm lint --strict</c>; returns helm's output and whether it passed.</summary>
    public static async Task<(bool Passed, string Output)> LintAsync(IEnumerable<string> valuesFiles)
    {
        var args = new List<string> { "lint", "--strict", ChartDirectory, "--namespace", Namespace };
        foreach (var file in valuesFiles)
        {
            args.AddRange(["-f", file]);
        }

        var (exitCode, output, error) = await RunAsync(args);
        return (exitCode == 0, output + error);
    }

    private static List<string> TemplateArgs(IEnumerable<string> valuesFiles, IEnumerable<string>? apiVersions, IEnumerable<string>? extraArgs)
    {
        var args = new List<string> { "template", Release, ChartDirectory, "--namespace", Namespace };
        foreach (var file in valuesFiles)
        {
            args.AddRange(["-f", file]);
        }

        foreach (var api in apiVersions ?? [])
        {
            args.AddRange(["--api-versions", api]);
        }

        args.AddRange(extraArgs ?? []);
        return args;
    }

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(Binary, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start " + Binary);
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(cts.Token);
        return (process.ExitCode, await output, await error);
    }

    private static string FindBinary()
    {
        var fetched = Path.Combine(RepositoryRoot, ".tools", "helm", "helm");
        if (File.Exists(fetched))
        {
            return fetched;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator))
        {
            var candidate = Path.Combine(dir, "helm");
            if (dir.Length > 0 && File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("helm is neither on PATH nor in .tools/helm: run scripts/fetch-helm.sh (./test.sh does).");
    }

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

/// <summary>helm refused to render.</summary>
public sealed class HelmFailedException(string message) : Exception(message);
