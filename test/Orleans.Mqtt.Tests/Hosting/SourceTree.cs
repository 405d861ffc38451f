using System.Reflection;

namespace Orleans.Mqtt.Tests.Hosting;

/// <summary>The repository and the broker's assemblies, for the tests that keep the documents in step with the code.</summary>
internal static class SourceTree
{
    /// <summary>The folder that holds <c>Orleans.Mqtt.sln</c>, above the test's output folder.</summary>
    public static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Orleans.Mqtt.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No Orleans.Mqtt.sln above {AppContext.BaseDirectory}.");
    }

    /// <summary>The types of <paramref name="assembly"/> that load (a type whose dependency is missing is left out).</summary>
    public static IEnumerable<Type> LoadableTypes(Assembly assembly)
    {
        try
        {
            return assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException exception)
        {
            return exception.Types.OfType<Type>();
        }
    }
}
