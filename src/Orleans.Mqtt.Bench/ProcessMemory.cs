using System.Globalization;

namespace Orleans.Mqtt.Bench;

/// <summary>Resident set size of other processes, from <c>/proc/&lt;pid&gt;/status</c> (Linux).</summary>
internal static class ProcessMemory
{
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
