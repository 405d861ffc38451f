namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The <c>api-key add NAME [--file PATH]</c> command: makes a random admin API key, prints it once on standard output
/// and appends only its SHA-256 to the key file (default <c>api-keys</c> in the working directory).
/// </summary>
public static class ApiKeyCommand
{
    /// <summary>The key file the command writes when <c>--file</c> is not given.</summary>
    public const string DefaultFile = "api-keys";

    /// <summary>Runs the command when <paramref name="args"/> starts with <c>api-key</c>; returns its exit code, or null for other arguments.</summary>
    public static int? TryRun(string[] args)
    {
        if (args.Length == 0 || args[0] != "api-key")
        {
            return null;
        }

        var file = DefaultFile;
        if (args.Length == 5 && args[3] == "--file")
        {
            file = args[4];
        }
        else if (args.Length != 3)
        {
            return Usage();
        }

        if (args[1] != "add")
        {
            return Usage();
        }

        var name = args[2];
        if (name.Length == 0 || name.Contains(':') || name.StartsWith('#') || name.Any(char.IsWhiteSpace))
        {
            Console.Error.WriteLine($"invalid key name '{name}': it must be non-empty, without ':' or spaces, and not start with '#'");
            return 2;
        }

        var existing = File.Exists(file) ? File.ReadAllText(file) : string.Empty;
        try
        {
            if (ApiKeySet.Parse(existing).Names.Contains(name, StringComparer.Ordinal))
            {
                Console.Error.WriteLine($"{file} already has a key named '{name}'; remove its line first to replace it");
                return 2;
            }
        }
        catch (FormatException ex)
        {
            Console.Error.WriteLine($"{file} is not a valid key file ({ex.Message}); not changed");
            return 2;
        }

        var key = ApiKeySet.NewKey();
        var separator = existing.Length > 0 && !existing.EndsWith('\n') ? "\n" : string.Empty;
        File.AppendAllText(file, $"{separator}{name}:{ApiKeySet.Hash(key)}\n");
        Console.WriteLine(key);
        Console.Error.WriteLine($"key '{name}' added to {file} (only its hash is stored: keep the key printed above, it is not shown again)");
        return 0;
    }

    private static int Usage()
    {
        Console.Error.WriteLine($"usage: api-key add <name> [--file <key-file>]   (default file: ./{DefaultFile})");
        return 2;
    }
}
