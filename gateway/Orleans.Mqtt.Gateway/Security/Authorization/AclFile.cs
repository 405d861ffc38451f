using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The rules of an ACL file (<c>Mqtt:AclFile</c>), in mosquitto's <c>acl_file</c> format, parsed once and never changed:
/// a reload makes a new one. <c>topic</c> lines before the first <c>user</c> line apply to clients without a user name,
/// <c>topic</c> lines after <c>user NAME</c> to that user, and <c>pattern</c> lines (anywhere) to every client, with
/// <c>%c</c> and <c>%u</c> expanded to its client id and user name.
/// </summary>
internal sealed class AclFile
{
    private static readonly Dictionary<string, AccessRule[]> NoUsers = new(StringComparer.Ordinal);

    private AclFile(AccessRule[] anonymous, Dictionary<string, AccessRule[]> users, AccessRule[] patterns)
    {
        Anonymous = anonymous;
        Users = users;
        Patterns = patterns;
    }

    /// <summary>No rules at all: with it, a connection gets only its own rules.</summary>
    public static AclFile Empty { get; } = new([], NoUsers, []);

    /// <summary>The <c>topic</c> rules of clients without a user name (the lines before the first <c>user</c>).</summary>
    public AccessRule[] Anonymous { get; }

    /// <summary>The <c>topic</c> rules of each user (taken literally: <c>%c</c> and <c>%u</c> are not expanded in them).</summary>
    public Dictionary<string, AccessRule[]> Users { get; }

    /// <summary>The <c>pattern</c> rules, for every client.</summary>
    public AccessRule[] Patterns { get; }

    /// <summary>How many rules the file holds.</summary>
    public int RuleCount => Anonymous.Length + Patterns.Length + Users.Values.Sum(r => r.Length);

    /// <summary>Reads and parses the file at <paramref name="path"/>; throws <see cref="AclFileException"/> naming the bad line.</summary>
    public static AclFile Load(string path) => Parse(File.ReadAllText(path));

    /// <summary>Parses ACL file text; throws <see cref="AclFileException"/> naming the first bad line.</summary>
    public static AclFile Parse(string text)
    {
        var anonymous = new List<AccessRule>();
        var patterns = new List<AccessRule>();
        var users = new Dictionary<string, List<AccessRule>>(StringComparer.Ordinal);
        List<AccessRule> current = anonymous;
        var lineNumber = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNumber++;
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var (keyword, rest) = SplitWord(line);
            switch (keyword)
            {
                case "user":
                    if (rest.Length == 0)
                    {
                        throw new AclFileException(lineNumber, "'user' without a user name");
                    }

                    if (!users.TryGetValue(rest, out var block))
                    {
                        users[rest] = block = [];
                    }

                    current = block;
                    break;
                case "topic":
                    current.Add(ParseRule(lineNumber, keyword, rest, pattern: false));
                    break;
                case "pattern":
                    patterns.Add(ParseRule(lineNumber, keyword, rest, pattern: true));
                    break;
                default:
                    throw new AclFileException(lineNumber, $"unknown keyword '{keyword}' (expected user, topic or pattern)");
            }
        }

        var byUser = new Dictionary<string, AccessRule[]>(users.Count, StringComparer.Ordinal);
        foreach (var (user, rules) in users)
        {
            byUser[user] = [.. rules];
        }

        return new AclFile([.. anonymous], byUser, [.. patterns]);
    }

    private static AccessRule ParseRule(int lineNumber, string keyword, string rest, bool pattern)
    {
        var kind = AccessKind.ReadWrite;
        var (word, afterWord) = SplitWord(rest);
        if (TryParseKind(word, out var parsed))
        {
            kind = parsed;
            rest = afterWord;
        }

        if (rest.Length == 0)
        {
            throw new AclFileException(lineNumber, $"'{keyword}' without a topic filter");
        }

        // %c and %u stand for one value each; checked with a plain level in their place.
        var check = pattern ? rest.Replace("%c", "c", StringComparison.Ordinal).Replace("%u", "u", StringComparison.Ordinal) : rest;
        if (!MqttTopic.IsValidTopicFilter(check))
        {
            throw new AclFileException(lineNumber, $"'{rest}' is not a valid topic filter");
        }

        return new AccessRule(kind, rest);
    }

    private static bool TryParseKind(string word, out AccessKind kind)
    {
        switch (word)
        {
            case "read":
                kind = AccessKind.Read;
                return true;
            case "write":
                kind = AccessKind.Write;
                return true;
            case "readwrite":
                kind = AccessKind.ReadWrite;
                return true;
            case "deny":
                kind = AccessKind.Deny;
                return true;
            default:
                kind = default;
                return false;
        }
    }

    private static (string Word, string Remainder) SplitWord(string text)
    {
        var end = text.IndexOfAny([' ', '\t']);
        return end < 0 ? (text, string.Empty) : (text[..end], text[(end + 1)..].Trim());
    }
}

/// <summary>An ACL file that cannot be used, with the line (1-based) that is wrong.</summary>
internal sealed class AclFileException(int line, string problem) : Exception($"line {line}: {problem}")
{
    /// <summary>The 1-based line number of the bad line.</summary>
    public int Line { get; } = line;
}
