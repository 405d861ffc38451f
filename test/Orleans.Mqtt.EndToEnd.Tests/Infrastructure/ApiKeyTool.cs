using System.Diagnostics;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>Adds admin API keys with the broker's own command (<c>api-key add NAME --file FILE</c>).</summary>
public static class ApiKeyTool
{
    /// <summary>Runs the command; returns the key it printed (the file holds only its hash).</summary>
    public static async Task<string> AddKeyAsync(string keysFile, string name)
    {
        var info = new ProcessStartInfo("dotnet", [Paths.GatewayDll, "api-key", "add", name, "--file", keysFile])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, await error);
        return (await output).Trim();
    }
}
