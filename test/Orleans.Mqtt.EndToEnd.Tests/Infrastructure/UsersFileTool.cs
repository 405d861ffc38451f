using System.Diagnostics;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>Writes users files with the broker's own command (<c>users add FILE USER</c>, password on stdin).</summary>
public static class UsersFileTool
{
    public static async Task AddUserAsync(string usersFile, string user, string password)
    {
        var info = new ProcessStartInfo("dotnet", [Paths.StandaloneDll, "users", "add", usersFile, user])
        {
            RedirectStandardInput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(info)!;
        await process.StandardInput.WriteLineAsync(password);
        process.StandardInput.Close();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, await process.StandardError.ReadToEndAsync());
    }
}
