using System.Reflection;
using System.Text.RegularExpressions;
using Xunit;

namespace Orleans.Mqtt.Tests.Hosting;

/// <summary>
/// Keeps <c>docs/architecture.md</c> true to the code: every file path it writes in backticks must exist, and every
/// <c>`Type.Member`</c> must name a type of the Orleans.Mqtt assemblies that has that member.
/// </summary>
public sealed partial class ArchitectureDocumentTests
{
    private const BindingFlags AnyMember =
        BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.FlattenHierarchy;

    private static readonly string Root = SourceTree.RepositoryRoot();

    [Fact]
    public void Every_file_path_it_names_exists()
    {
        var missing = new List<string>();
        foreach (var code in CodeSpans())
        {
            if (PathPattern().IsMatch(code) && !File.Exists(Path.Combine(Root, code)) && !Directory.Exists(Path.Combine(Root, code)))
            {
                missing.Add(code);
            }
        }

        Assert.True(missing.Count == 0, $"docs/architecture.md names paths that do not exist: {string.Join(", ", missing)}");
    }

    [Fact]
    public void Every_type_and_member_it_names_exists()
    {
        var types = LoadTypes();
        var namespaces = new HashSet<string>(types.Values.SelectMany(t => t).Select(t => t.Namespace ?? string.Empty), StringComparer.Ordinal);
        var problems = new List<string>();
        var checkedReferences = 0;
        foreach (var code in CodeSpans())
        {
            var match = MemberPattern().Match(code);
            if (!match.Success || IsNamespace(code, namespaces))
            {
                continue;
            }

            checkedReferences++;
            var parts = match.Groups["name"].Value.Split('.');
            var typeName = parts[^2];
            var memberName = parts[^1];
            if (!types.TryGetValue(typeName, out var candidates))
            {
                problems.Add($"`{code}`: no type {typeName} in the Orleans.Mqtt assemblies");
            }
            else if (!candidates.Any(t => HasMember(t, memberName)))
            {
                problems.Add($"`{code}`: {typeName} has no member {memberName}");
            }
        }

        Assert.True(checkedReferences > 0, "docs/architecture.md names no `Type.Member` at all");
        Assert.True(problems.Count == 0, $"docs/architecture.md is out of date:{Environment.NewLine}{string.Join(Environment.NewLine, problems)}");
    }

    private static IEnumerable<string> CodeSpans()
    {
        var text = File.ReadAllText(Path.Combine(Root, "docs", "architecture.md"));

        // Fenced blocks (the picture) are not references.
        text = FencePattern().Replace(text, string.Empty);
        foreach (Match m in CodePattern().Matches(text))
        {
            yield return m.Groups[1].Value;
        }
    }

    private static bool IsNamespace(string name, HashSet<string> namespaces) =>
        namespaces.Contains(name) || namespaces.Any(ns => ns.StartsWith(name + ".", StringComparison.Ordinal));

    private static bool HasMember(Type type, string name)
    {
        if (type.GetMember(name, MemberTypes.All, AnyMember).Length > 0)
        {
            return true;
        }

        // Interfaces do not inherit the members of the interfaces they extend.
        foreach (var parent in type.GetInterfaces())
        {
            if (parent.GetMember(name, MemberTypes.All, AnyMember).Length > 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Every type of the Orleans.Mqtt assemblies beside the tests (nested and non-public ones too), by simple name.</summary>
    private static Dictionary<string, List<Type>> LoadTypes()
    {
        var byName = new Dictionary<string, List<Type>>(StringComparer.Ordinal);
        var self = typeof(ArchitectureDocumentTests).Assembly.GetName().Name;
        foreach (var file in Directory.EnumerateFiles(AppContext.BaseDirectory, "Orleans.Mqtt.*.dll"))
        {
            var name = AssemblyName.GetAssemblyName(file);
            if (name.Name == self)
            {
                continue;
            }

            foreach (var type in SourceTree.LoadableTypes(Assembly.Load(name)))
            {
                var simple = type.Name;
                var arity = simple.IndexOf('`', StringComparison.Ordinal);
                if (arity >= 0)
                {
                    simple = simple[..arity];
                }

                if (!byName.TryGetValue(simple, out var list))
                {
                    byName[simple] = list = [];
                }

                list.Add(type);
            }
        }

        Assert.True(byName.ContainsKey("ClientSessionGrain"), "the grain assembly was not found beside the tests");
        return byName;
    }

    [GeneratedRegex(@"^```.*?^```", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex FencePattern();

    [GeneratedRegex(@"`([^`\r\n]+)`")]
    private static partial Regex CodePattern();

    // A path from the repository root: at least one slash, no spaces, wildcards or placeholders.
    [GeneratedRegex(@"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)+/?$")]
    private static partial Regex PathPattern();

    // Type.Member (Pascal case on both sides), optionally with "()".
    [GeneratedRegex(@"^(?<name>[A-Z][A-Za-z0-9_]*(\.[A-Z][A-Za-z0-9_]*)+)(\(\))?$")]
    private static partial Regex MemberPattern();
}
