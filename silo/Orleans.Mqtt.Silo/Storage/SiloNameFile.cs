namespace Orleans.Mqtt.Silo.Storage;

/// <summary>
/// The silo's name is the identity of its data directory: created at the first start and kept in the directory's
/// <c>silo-name</c> file. Sessions name their home silo by it (their state is on that silo's disk), so a silo that
/// restarts on the same directory under a new address (a new generation, in Kubernetes often a new pod IP) is still
/// their home, and a new directory never inherits another silo's sessions. A name set in <c>Orleans:Name</c> is
/// written at the first start; a directory that already holds another name is refused, since the sessions stored in
/// it are known under that one.
/// </summary>
internal static class SiloNameFile
{
    public const string FileName = "silo-name";

    /// <summary>Reads the name kept in <paramref name="dataDirectory"/>, creating it on first use.</summary>
    public static string ReadOrCreate(string dataDirectory, string? configuredName)
    {
        var path = Path.Combine(Path.GetFullPath(dataDirectory), FileName);
        try
        {
            if (File.Exists(path))
            {
                var stored = Valid(File.ReadAllText(path).Trim(), $"the file '{path}'");
                return configuredName is null || configuredName == stored
                    ? stored
                    : throw new OrleansConfigurationException(
                        $"Orleans:Name is '{configuredName}', but Storage:DataDirectory holds the sessions of silo '{stored}' ('{path}'). Use that name, or another data directory.");
            }

            var name = configuredName is null ? "silo-" + Guid.NewGuid().ToString("N")[..16] : Valid(configuredName, "Orleans:Name");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var temporary = path + ".tmp";
            File.WriteAllText(temporary, name + "\n");
            File.Move(temporary, path, overwrite: false);
            return name;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new OrleansConfigurationException($"Storage:DataDirectory: cannot read or create the silo's name in '{path}': {ex.Message}", ex);
        }
    }

    private static string Valid(string name, string source) =>
        name.Length is > 0 and <= 128 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')
            ? name
            : throw new OrleansConfigurationException(
                $"Silo name: {source} must hold 1-128 letters, digits, '-', '_' or '.', found '{name}'.");
}
