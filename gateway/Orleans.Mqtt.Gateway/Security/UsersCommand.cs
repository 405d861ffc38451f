using Orleans.Mqtt.Security;

namespace Orleans.Mqtt.Gateway;

/// <summary>The <c>users add FILE USER</c> command: adds or replaces a user in a users file (password read from standard input).</summary>
public static class UsersCommand
{
    /// <summary>Runs the command when <paramref name="args"/> starts with <c>users</c>; returns its exit code, or null for other arguments.</summary>
    public static int? TryRun(string[] args)
    {
        if (args.Length == 0 || args[0] != "users")
        {
            return null;
        }

        if (args.Length != 4 || args[1] != "add")
        {
            Console.Error.WriteLine("usage: users add <users-file> <username>   (the password is read from standard input)");
            return 2;
        }

        var (file, user) = (args[2], args[3]);
        if (user.Length == 0 || user.Contains(':'))
        {
            Console.Error.WriteLine($"invalid user name '{user}': it must be non-empty and must not contain ':'");
            return 2;
        }

        if (!Console.IsInputRedirected)
        {
            Console.Error.Write($"password for {user}: ");
        }

        var password = Console.ReadLine();
        if (string.IsNullOrEmpty(password))
        {
            Console.Error.WriteLine("empty password refused");
            return 2;
        }

        UsersFile.AddOrUpdate(file, user, password);
        Console.Error.WriteLine($"user '{user}' written to {file}");
        return 0;
    }
}
