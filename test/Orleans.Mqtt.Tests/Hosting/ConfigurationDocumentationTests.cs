using System.Reflection;
using System.Text.RegularExpressions;
using Orleans.Configuration;
using Orleans.Mqtt.Clustering.Consul;
using Orleans.Mqtt.Clustering.Etcd;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Ownership.Etcd;
using Orleans.Mqtt.Silo.Storage;
using Xunit;

namespace Orleans.Mqtt.Tests.Hosting;

/// <summary>
/// Keeps <c>docs/configuration.md</c> and the code in step: every setting of an options class and every key the hosts
/// read directly is a row of the document, and every row of the document is such a setting.
/// </summary>
/// <remarks>
/// The document's keys are the first column of its table rows, written as <c>| `Key` |</c>. The code's keys are the
/// settable properties of the options classes below, prefixed with the section each is bound from (a property whose
/// type is itself an options class adds its own properties under <c>Section:Property:</c>), plus
/// <see cref="ReadDirectly"/>.
/// </remarks>
public sealed partial class ConfigurationDocumentationTests
{
    /// <summary>
    /// Every options class bound to configuration, with its section. A new class named <c>*Options</c> in an
    /// Orleans.Mqtt assembly must be added here, unless it is the type of a property of one listed here.
    /// </summary>
    private static readonly Dictionary<Type, string> BoundOptions = new()
    {
        [typeof(MqttGatewayOptions)] = MqttGatewayOptions.SectionName,
        [typeof(MqttBrokerOptions)] = MqttBrokerOptions.SectionName,
        [typeof(HttpEndpointOptions)] = HttpEndpointOptions.SectionName,
        [typeof(FasterStorageOptions)] = "Storage",
        [typeof(EtcdClusteringOptions)] = EtcdClusteringOptions.SectionName,
        [typeof(ConsulClusteringOptions)] = ConsulClusteringOptions.SectionName,
        [typeof(EtcdOwnershipOptions)] = EtcdOwnershipOptions.SectionName,
        [typeof(Orleans.Mqtt.Telemetry.TracingOptions)] = Orleans.Mqtt.Telemetry.TracingOptions.SectionName,
    };

    /// <summary>Keys the hosts read from configuration themselves; each must appear as a string literal in their source.</summary>
    private static readonly string[] ReadDirectly =
    [
        "Clustering:Provider",
        "Orleans:ClusterId",
        "Orleans:SiloPort",
        "Orleans:GatewayPort",
        "Orleans:AdvertisedIPAddress",
        "Orleans:Name",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "Host:ShutdownTimeout",
        "Orleans:Gateway:GatewayListRefreshPeriod",
    ];

    /// <summary>
    /// The silo binds Orleans' <see cref="ClusterMembershipOptions"/> to this section; the document lists the few of its
    /// many properties that matter here, so those rows are checked against that class and not compared both ways.
    /// </summary>
    private const string MembershipSection = "Membership";

    // Assemblies of this repository that are not part of a host.
    private static readonly string[] NotHostAssemblySuffixes = [".Tests", ".Testing", ".Bench", ".Benchmarks"];

    [Fact]
    public void Every_options_class_is_mapped_to_its_section()
    {
        var unmapped = HostAssemblies()
            .SelectMany(SourceTree.LoadableTypes)
            .Where(t => t.IsClass && t.Name.EndsWith("Options", StringComparison.Ordinal))
            .Where(t => !BoundOptions.ContainsKey(t) && !IsChildOptions(t))
            .Select(t => t.FullName)
            .Order(StringComparer.Ordinal)
            .ToList();

        Assert.True(
            unmapped.Count == 0,
            $"Options classes missing from {nameof(ConfigurationDocumentationTests)}.{nameof(BoundOptions)} (add each with the section it is bound from, and its settings to docs/configuration.md): {string.Join(", ", unmapped)}");
    }

    [Fact]
    public void Documented_settings_are_the_settings_in_code()
    {
        var inCode = BoundOptions
            .SelectMany(pair => Keys(pair.Value, pair.Key))
            .Concat(ReadDirectly)
            .ToHashSet(StringComparer.Ordinal);
        var documented = DocumentedKeys()
            .Where(k => !k.StartsWith(MembershipSection + ":", StringComparison.Ordinal))
            .ToHashSet(StringComparer.Ordinal);

        var undocumented = inCode.Except(documented).Order(StringComparer.Ordinal).ToList();
        var unknown = documented.Except(inCode).Order(StringComparer.Ordinal).ToList();

        Assert.True(
            undocumented.Count == 0 && unknown.Count == 0,
            "docs/configuration.md and the code disagree.\n"
            + $"In code, not documented (add a table row): {string.Join(", ", undocumented)}\n"
            + $"Documented, not in code (remove the row, or add the key to {nameof(ReadDirectly)} if a host reads it directly): {string.Join(", ", unknown)}");
    }

    [Fact]
    public void Keys_read_directly_are_read_by_the_hosts()
    {
        var source = string.Join('\n', SourceFiles().Select(File.ReadAllText));
        var missing = ReadDirectly.Where(key => !source.Contains($"\"{key}\"", StringComparison.Ordinal)).ToList();
        Assert.True(
            missing.Count == 0,
            $"Keys listed as read directly that no host source file names (remove them from {nameof(ReadDirectly)} and the document): {string.Join(", ", missing)}");
    }

    [Fact]
    public void Documented_membership_settings_are_orleans_membership_options()
    {
        Assert.Contains(SourceFiles(), file => File.ReadAllText(file).Contains($"GetSection(\"{MembershipSection}\")", StringComparison.Ordinal));
        var properties = typeof(ClusterMembershipOptions)
            .GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true })
            .Select(p => $"{MembershipSection}:{p.Name}")
            .ToHashSet(StringComparer.Ordinal);
        var documented = DocumentedKeys().Where(k => k.StartsWith(MembershipSection + ":", StringComparison.Ordinal)).ToList();

        Assert.NotEmpty(documented);
        var unknown = documented.Where(k => !properties.Contains(k)).ToList();
        Assert.True(unknown.Count == 0, $"Documented membership settings that ClusterMembershipOptions does not have: {string.Join(", ", unknown)}");
    }

    /// <summary>The full keys of the settable properties of <paramref name="type"/>, under <paramref name="section"/>.</summary>
    private static IEnumerable<string> Keys(string section, Type type)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.SetMethod is not { IsPublic: true })
            {
                // Computed from other settings (e.g. MqttGatewayOptions.AnonymousAllowed): not bound.
                continue;
            }

            var key = $"{section}:{property.Name}";
            if (IsOptionsClass(property.PropertyType))
            {
                foreach (var child in Keys(key, property.PropertyType))
                {
                    yield return child;
                }
            }
            else
            {
                yield return key;
            }
        }
    }

    private static bool IsOptionsClass(Type type) => type.IsClass && type.Name.EndsWith("Options", StringComparison.Ordinal);

    /// <summary>Whether <paramref name="type"/> (or a type derived from it) is the type of a property of a bound options class.</summary>
    private static bool IsChildOptions(Type type) =>
        BoundOptions.Keys
            .SelectMany(ChildOptionTypes)
            .Any(child => type.IsAssignableFrom(child));

    private static IEnumerable<Type> ChildOptionTypes(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => p.PropertyType)
            .Where(IsOptionsClass)
            .SelectMany(child => ChildOptionTypes(child).Prepend(child));

    private static IEnumerable<Assembly> HostAssemblies() =>
        Directory.EnumerateFiles(AppContext.BaseDirectory, "Orleans.Mqtt.*.dll")
            .Select(path => Path.GetFileNameWithoutExtension(path))
            .Where(name => !NotHostAssemblySuffixes.Any(suffix => name.EndsWith(suffix, StringComparison.Ordinal)))
            .Select(name => Assembly.Load(new AssemblyName(name)));

    private static List<string> DocumentedKeys()
    {
        var document = Path.Combine(SourceTree.RepositoryRoot(), "docs", "configuration.md");
        return File.ReadLines(document)
            .Select(line => TableKey().Match(line))
            .Where(match => match.Success)
            .Select(match => match.Groups[1].Value)
            .ToList();
    }

    /// <summary>The C# files of the hosts and the libraries they use (not the tests and not the load tool).</summary>
    private static IEnumerable<string> SourceFiles()
    {
        var root = SourceTree.RepositoryRoot();
        string[] folders = ["src", "silo", "gateway", "grains"];
        return folders
            .SelectMany(folder => Directory.EnumerateFiles(Path.Combine(root, folder), "*.cs", SearchOption.AllDirectories))
            .Where(path => !path.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !path.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !path.Contains("Orleans.Mqtt.Bench", StringComparison.Ordinal));
    }

    // The first cell of a table row, when it is one key in backticks: | `Mqtt:Tcp:Port` | …
    [GeneratedRegex(@"^\|\s*`([^`]+)`\s*\|")]
    private static partial Regex TableKey();
}
