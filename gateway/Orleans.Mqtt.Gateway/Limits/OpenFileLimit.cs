using System.Runtime.InteropServices;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The process's open-file limit (<c>RLIMIT_NOFILE</c>) on Linux and macOS: raises the soft limit to the hard one (any
/// process may; only a privileged one may raise the hard limit) and counts the descriptors open. Elsewhere it knows nothing.
/// </summary>
internal static partial class OpenFileLimit
{
    /// <summary>What <see cref="Raise"/> found and did.</summary>
    /// <param name="Before">The soft limit found (0: unknown).</param>
    /// <param name="Soft">The soft limit in force afterwards (0: unknown; <see cref="long.MaxValue"/>: unlimited).</param>
    /// <param name="Hard">The hard limit, which only a privileged process can raise.</param>
    /// <param name="Error">The errno of a raise that failed, else 0.</param>
    public readonly record struct State(long Before, long Soft, long Hard, int Error);

    // RLIM_INFINITY is all ones on Linux and 2^63 - 1 on macOS; either reads as "no limit".
    private const ulong Infinity = long.MaxValue;

    /// <summary>Raises the soft limit to the hard limit where it is lower; returns the limits before and after.</summary>
    public static State Raise()
    {
        if (!(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) || getrlimit(Resource, out var limit) != 0)
        {
            return default;
        }

        var before = ToLong(limit.Current);
        var hard = ToLong(limit.Maximum);
        if (before >= hard)
        {
            return new State(before, before, hard, 0);
        }

        var raised = limit with { Current = limit.Maximum };
        if (setrlimit(Resource, in raised) != 0)
        {
            // macOS refuses an unlimited soft limit for files (EINVAL); the soft limit stays.
            return new State(before, before, hard, Marshal.GetLastPInvokeError());
        }

        return new State(before, hard, hard, 0);
    }

    /// <summary>The descriptors the process has open now, or 0 when the system does not say.</summary>
    public static long CountOpen()
    {
        var directory = OperatingSystem.IsLinux() ? "/proc/self/fd" : OperatingSystem.IsMacOS() ? "/dev/fd" : null;
        if (directory is null)
        {
            return 0;
        }

        try
        {
            // The enumeration's own directory handle is among them: one more than the process holds otherwise, which
            // errs on the safe side.
            return Directory.EnumerateFileSystemEntries(directory).LongCount();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    private static int Resource => OperatingSystem.IsMacOS() ? 8 : 7; // RLIMIT_NOFILE

    private static long ToLong(ulong value) => value >= Infinity ? long.MaxValue : (long)value;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, out RLimit limit);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setrlimit(int resource, in RLimit limit);

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }
}

/// <summary>
/// The open-file limit leaves no room for MQTT connections; the message names the limit and the settings.
/// <see cref="GatewayHostingExtensions.RunMqttGatewayAsync"/> prints it as the start-up error.
/// </summary>
internal sealed class OpenFileLimitException(string message) : Exception(message);
