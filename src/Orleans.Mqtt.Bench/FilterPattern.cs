using System.Globalization;
using System.Text;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// The filters a conn connection subscribes, from <c>--filter-pattern</c>: <c>{prefix}</c> is the run's topic prefix,
/// <c>{c}</c> the connection's index in the whole run, <c>{i}</c> the subscription's index within the connection and
/// <c>{n}</c> the subscription's index in the whole run (<c>c × subscriptions + i</c>). A filter may hold wildcards;
/// <see cref="TopicFor"/> gives a topic it matches, which the route check publishes to.
/// </summary>
internal static class FilterPattern
{
    /// <summary>The pattern when none is given: the one-subscription form kept from before, or one topic per subscription.</summary>
    public static string Default(int subscriptions) => subscriptions <= 1 ? "{prefix}/c/{c}" : "{prefix}/c/{c}/{i}";

    /// <summary>
    /// Checks that <paramref name="pattern"/> expands to valid, distinct filters: wildcards only as whole levels, <c>#</c>
    /// only last, only the known placeholders, and a placeholder that tells connections apart (<c>{c}</c> or <c>{n}</c>),
    /// and subscriptions apart when there are several (<c>{i}</c> or <c>{n}</c>). Returns the reason otherwise.
    /// </summary>
    public static string? Validate(string pattern, int subscriptions)
    {
        var rest = pattern.Replace("{prefix}", "", StringComparison.Ordinal).Replace("{c}", "", StringComparison.Ordinal)
            .Replace("{i}", "", StringComparison.Ordinal).Replace("{n}", "", StringComparison.Ordinal);
        if (rest.Contains('{', StringComparison.Ordinal) || rest.Contains('}', StringComparison.Ordinal))
        {
            return "only {prefix}, {c}, {i} and {n} may appear in braces";
        }

        if (!pattern.Contains("{c}", StringComparison.Ordinal) && !pattern.Contains("{n}", StringComparison.Ordinal))
        {
            return "needs {c} or {n}, or every connection subscribes the same filters";
        }

        if (subscriptions > 1 && !pattern.Contains("{i}", StringComparison.Ordinal) && !pattern.Contains("{n}", StringComparison.Ordinal))
        {
            return "needs {i} or {n} with more than one subscription per connection";
        }

        var levels = Expand(pattern, "p", 0, 0, subscriptions).Split('/');
        for (var l = 0; l < levels.Length; l++)
        {
            var level = levels[l];
            if ((level.Contains('+', StringComparison.Ordinal) && level != "+") || (level.Contains('#', StringComparison.Ordinal) && level != "#"))
            {
                return "a wildcard must be a whole level";
            }

            if (level == "#" && l != levels.Length - 1)
            {
                return "# must be the last level";
            }
        }

        return null;
    }

    /// <summary>The filter of subscription <paramref name="index"/> of connection <paramref name="connection"/>.</summary>
    public static string Expand(string pattern, string prefix, int connection, int index, int subscriptions)
    {
        var c = CultureInfo.InvariantCulture;
        return new StringBuilder(pattern)
            .Replace("{prefix}", prefix)
            .Replace("{c}", connection.ToString(c))
            .Replace("{i}", index.ToString(c))
            .Replace("{n}", ((long)connection * Math.Max(1, subscriptions) + index).ToString(c))
            .ToString();
    }

    /// <summary>A topic that <paramref name="filter"/> matches: each <c>+</c> level becomes <c>x</c>, a final <c>#</c> becomes <c>x</c>.</summary>
    public static string TopicFor(string filter)
    {
        var levels = filter.Split('/');
        for (var l = 0; l < levels.Length; l++)
        {
            if (levels[l] is "+" or "#")
            {
                levels[l] = "x";
            }
        }

        return string.Join('/', levels);
    }
}
