using System.Globalization;

namespace Orleans.Mqtt.Bench;

/// <summary>Resident set size and CPU time of other processes (the broker's), from <c>/proc</c> (Linux).</summary>
internal static class ProcessMemory
{
    // USER_HZ: the unit of utime and stime in /proc/<pid>/stat; 100 on every Linux architecture .NET runs on.
    private const double ClockTicksPerSecond = 100;

    /// <summary>Summed user and system CPU time of <paramref name="pids"/>; a process that cannot be read counts 0.</summary>
    public static TimeSpan CpuTime(IEnumerable<int> pids)
    {
        double ticks = 0;
        foreach (var pid in pids)
        {
            try
            {
                // Fields after the command name, which is in parentheses and may contain spaces: utime and stime are the 12th and 13th.
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                ticks += double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return TimeSpan.FromSeconds(ticks / ClockTicksPerSecond);
    }

    /// <summary>Summed RSS of <paramref name="pids"/> in bytes; a process that cannot be read counts 0.</summary>
    public static long RssBytes(IEnumerable<int> pids)
    {
        long total = 0;
        foreach (var pid in pids)
        {
            try
            {
                foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                {
                    if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    {
                        var kilobytes = line.AsSpan(6).Trim();
                        kilobytes = kilobytes[..kilobytes.IndexOf(' ')];
                        total += long.Parse(kilobytes, NumberStyles.Integer, CultureInfo.InvariantCulture) * 1024;
                        break;
                    }
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return total;
    }
}
