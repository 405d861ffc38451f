using System.Reflection;
using System.Text.RegularExpressions;
using Xunit;

namespace Orleans.Mqtt.Tests.Hosting;

/// <summary>
/// Keeps <c>docs/architecture.md</c> true to the code: every file path it names exists, every type it names in
/// backticks is a type of the broker, and every <c>Type.Member</c> is a member of that type.
/// </summary>
public sealed partial class ArchitectureDocumentTests
{
    private static readonly string[] PathRoots = ["src/", "gateway/", "grains/", "silo/", "test/", "docs/", "bench/", "charts/"];

    [Fact]
    public void Every_path_type_and_member_the_document_names_exists()
    {
        var root = SourceTree.RepositoryRoot();
        var types = BrokerTypes();
        var missing = new List<string>();
        var checkedReferences = 0;
        var document = CodeBlock().Replace(File.ReadAllText(Path.Combine(root, "docs", "architecture.md")), string.Empty);
        foreach (Match match in Quoted().Matches(document))
        {
            var text = match.Groups[1].Value;
            if (PathRoots.Any(r => text.StartsWith(r, StringComparison.Ordinal)) && !text.Contains(' ', StringComparison.Ordinal))
            {
                checkedReferences++;
                var path = Path.Combine(root, text.TrimEnd('/'));
                if (!File.Exists(path) && !Directory.Exists(path))
                {
                    missing.Add($"path {text}");
                }
            }
            else if (TypeAndMember().Match(text) is { Success: true } reference)
            {
                checkedReferences++;
                var typeName = reference.Groups[1].Value;
                var member = reference.Groups[2].Value;
                if (!types.TryGetValue(typeName, out var candidates))
                {
                    missing.Add($"type {typeName}");
                }
                else if (member.Length > 0 && !candidates.Any(t => HasMember(t, member)))
                {
                    missing.Add($"member {typeName}.{member}");
                }
            }
        }

        Assert.True(checkedReferences > 50, $"only {checkedReferences} references found: has the document's convention changed?");
        Assert.True(missing.Count == 0, "docs/architecture.md names what the code does not have: " + string.Join(", ", missing));
    }

    private static bool HasMember(Type type, string name)
    {
        const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;
        for (var t = type; t is not null; t = t.BaseType)
        {
            if (t.GetMember(name, All).Length > 0)
            {
                return true;
            }
        }

        return type.GetInterfaces().Any(i => i.GetMember(name, All).Length > 0);
    }

    // Every type of the broker's assemblies (this test assembly included) by simple name, generic arity left off.
    private static Dictionary<string, List<Type>> BrokerTypes()
    {
        var types = new Dictionary<string, List<Type>>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFiles(AppContext.BaseDirectory, "Orleans.Mqtt.*.dll"))
        {
            var assembly = Assembly.Load(new AssemblyName(Path.GetFileNameWithoutExtension(path)));
            foreach (var type in SourceTree.LoadableTypes(assembly))
            {
                var name = type.Name;
                var tick = name.IndexOf('`', StringComparison.Ordinal);
                name = tick < 0 ? name : name[..tick];
                if (!types.TryGetValue(name, out var list))
                {
                    types[name] = list = [];
                }

                list.Add(type);
            }
        }

        return types;
    }

    // Text in backticks, within one line.
    [GeneratedRegex("`([^`\\n]+)`")]
    private static partial Regex Quoted();

    // A fenced block (the picture), which holds no references.
    [GeneratedRegex("^```.*?^```", RegexOptions.Singleline | RegexOptions.Multiline)]
    private static partial Regex CodeBlock();

    // A PascalCase type name (two capitals at least, after an interface's I, so that plain words are not taken for
    // types), optionally with .Member.
    [GeneratedRegex(@"^(I?[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*)(?:\.([A-Z][A-Za-z0-9]*))?$")]
    private static partial Regex TypeAndMember();
}
