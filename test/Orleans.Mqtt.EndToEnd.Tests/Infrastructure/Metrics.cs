using System.Globalization;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>Reads a host's Prometheus text from its <c>/metrics</c>.</summary>
public static class Metrics
{
    public static async Task<string> ScrapeAsync(int httpPort)
    {
        using var http = new HttpClient();
        return await http.GetStringAsync($"http://127.0.0.1:{httpPort}/metrics");
    }

    /// <summary>
    /// The sum of the series named <paramref name="name"/> whose labels include <paramref name="label"/> (e.g.
    /// <c>reason="invalid_topic"</c>), or 0 when there is none.
    /// </summary>
    public static double Sum(string text, string name, string? label = null)
    {
        var total = 0.0;
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith(name + "{", StringComparison.Ordinal) && !line.StartsWith(name + " ", StringComparison.Ordinal))
            {
                continue;
            }

            var labelsEnd = line.LastIndexOf('}');
            var labels = labelsEnd < 0 ? string.Empty : line[..labelsEnd];
            if (label is null || labels.Contains(label, StringComparison.Ordinal))
            {
                total += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return total;
    }
}
