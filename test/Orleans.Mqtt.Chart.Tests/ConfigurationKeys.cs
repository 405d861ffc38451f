using System.Text.RegularExpressions;
using k8s.Models;

namespace Orleans.Mqtt.Chart.Tests;

/// <summary>
/// The configuration keys docs/configuration.md documents (the first column of its tables), and a check that every
/// environment variable a rendered container gets names one of them: the hosts ignore a key they do not know, so a
/// misspelt name would otherwise pass unnoticed.
/// </summary>
public static partial class ConfigurationKeys
{
    // Variables the chart defines for $(…) references (the downward API), not configuration.
    private static readonly string[] PodVariables = ["POD_NAME", "POD_IP"];

    public static IReadOnlySet<string> Documented { get; } = Read();

    /// <summary>
    /// The names among <paramref name="variables"/> that are not a documented key (in environment form, <c>__</c> for
    /// each <c>:</c>) or a pod variable. Keys under
    /// <c>Membership:</c> are Orleans' ClusterMembershipOptions, documented as a section.
    /// </summary>
    public static List<string> Unknown(IEnumerable<string> variables)
    {
        var unknown = new List<string>();
        foreach (var name in variables)
        {
            var key = name.Replace("__", ":", StringComparison.Ordinal);
            var known = Documented.Contains(key)
                || PodVariables.Contains(name)
                || (key.StartsWith("Membership:", StringComparison.Ordinal) && key.Length > "Membership:".Length);
            if (!known)
            {
                unknown.Add(name);
            }
        }

        return unknown;
    }

    /// <summary>Every environment variable name a container gets: its own and those of the ConfigMaps it reads whole.</summary>
    public static IEnumerable<string> VariableNames(V1Container container, Manifests manifests)
    {
        foreach (var source in container.EnvFrom ?? [])
        {
            foreach (var name in manifests.ConfigMap(source.ConfigMapRef.Name).Data?.Keys ?? [])
            {
                yield return name;
            }
        }

        foreach (var variable in container.Env ?? [])
        {
            yield return variable.Name;
        }
    }

    private static HashSet<string> Read()
    {
        var path = Path.Combine(Helm.RepositoryRoot, "docs", "configuration.md");
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(path))
        {
            if (KeyRow().Match(line) is { Success: true } match)
            {
                keys.Add(match.Groups[1].Value);
            }
        }

        return keys.Count > 20 ? keys : throw new InvalidOperationException($"only {keys.Count} keys read from {path}");
    }

    [GeneratedRegex(@"^\| `([^`]+)` \|")]
    private static partial Regex KeyRow();
}
