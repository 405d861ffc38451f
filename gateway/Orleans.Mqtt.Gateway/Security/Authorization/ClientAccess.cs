using System.Text;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>What a SUBSCRIBE filter gets under a connection's rules.</summary>
internal enum SubscribeAccess
{
    /// <summary>No topic the filter matches may be read: SUBACK 0x80 (3.1.1) / 0x87 (5.0).</summary>
    Denied,

    /// <summary>Some topics it matches may be read: accepted, and each delivered topic is checked.</summary>
    Partial,

    /// <summary>Every topic it matches may be read.</summary>
    Covered,
}

/// <summary>
/// One connection's authorization: the rules of the ACL file that apply to it (its user's block, or the anonymous rules,
/// and every pattern) with <c>%c</c> and <c>%u</c> expanded once, plus the rules its credentials carry, which act like
/// one more <c>user</c> block. Deny wins; what no rule allows is denied. Decisions are cached per topic (bounded), and
/// everything is made again when the ACL file is reloaded, so a connected client follows the new rules at its next
/// packet or delivery.
/// </summary>
/// <remarks>
/// A client id or user name that is empty or holds a topic level separator or wildcard (<c>/</c>, <c>+</c>, <c>#</c>)
/// could stand for another device's topics once expanded, so it expands nothing: an allowing rule that uses it grants
/// nothing, and a deny rule that uses it denies the level for everyone (<c>+</c> in its place). A client without a user
/// name thus gets nothing from <c>%u</c> rules either.
/// </remarks>
internal sealed class ClientAccess
{
    // Bounded so a client publishing to ever new topics cannot grow the cache without end; full means start again.
    internal const int CacheCapacity = 256;

    private readonly AclRuleSource _source;
    private readonly string _clientId;
    private readonly string? _userName;
    private readonly IReadOnlyList<AccessRule>? _connectionRules;
    private readonly DecisionCache _readCache = new();
    private readonly DecisionCache _writeCache = new();
    private volatile Compiled _compiled;

    public ClientAccess(AclRuleSource source, string clientId, string? userName, IReadOnlyList<AccessRule>? connectionRules)
    {
        _source = source;
        _clientId = clientId;
        _userName = string.IsNullOrEmpty(userName) ? null : userName;
        _connectionRules = connectionRules;
        _compiled = Compile(source.Current);
    }

    /// <summary>Whether the client id or user name cannot be put into a rule (see the remarks on the class).</summary>
    public bool HasUnsafeIdentity => !IsSafe(_clientId) || (_userName is not null && !IsSafe(_userName));

    /// <summary>Whether the client may publish (or leave a will) to <paramref name="topic"/>.</summary>
    public bool MayWrite(string topic)
    {
        var compiled = Current();
        return _writeCache.GetOrAdd(compiled, topic, static (c, t) => !c.Deny.Matches(t) && c.Write.Matches(t));
    }

    /// <summary>Whether the client may receive a message published to <paramref name="topic"/>.</summary>
    public bool MayRead(string topic)
    {
        var compiled = Current();
        return _readCache.GetOrAdd(compiled, topic, static (c, t) => !c.Deny.Matches(t) && c.Read.Matches(t));
    }

    /// <summary>What a SUBSCRIBE with <paramref name="filter"/> gets; a shared subscription is judged on its own filter.</summary>
    public SubscribeAccess CheckSubscribe(string filter)
    {
        if (SharedSubscription.IsShared(filter) && SharedSubscription.TryParse(filter, out _, out var inner))
        {
            filter = inner;
        }

        var c = Current();
        if (!c.Read.Intersects(filter) || c.Deny.Covers(filter))
        {
            return SubscribeAccess.Denied;
        }

        return c.Read.Covers(filter) && !c.Deny.Intersects(filter) ? SubscribeAccess.Covered : SubscribeAccess.Partial;
    }

    private Compiled Current()
    {
        var compiled = _compiled;
        var file = _source.Current;
        if (ReferenceEquals(compiled.File, file))
        {
            return compiled;
        }

        // A reload: two threads may both get here and compile; either result is the same.
        return _compiled = Compile(file);
    }

    private Compiled Compile(AclFile file)
    {
        var compiled = new Compiled(file);
        var own = _userName is null ? file.Anonymous : file.Users.GetValueOrDefault(_userName, []);
        foreach (var rule in own)
        {
            compiled.Add(rule.Kind, rule.Filter);
        }

        foreach (var rule in file.Patterns)
        {
            AddExpanded(compiled, rule);
        }

        if (_connectionRules is not null)
        {
            foreach (var rule in _connectionRules)
            {
                AddExpanded(compiled, rule);
            }
        }

        return compiled;
    }

    private void AddExpanded(Compiled compiled, AccessRule rule)
    {
        if (Expand(rule.Filter, _clientId, _userName, rule.Kind == AccessKind.Deny) is { } filter && MqttTopic.IsValidTopicFilter(filter))
        {
            compiled.Add(rule.Kind, filter);
        }
    }

    /// <summary>
    /// <paramref name="filter"/> with <c>%c</c> and <c>%u</c> replaced in one pass (a value holding <c>%u</c> is not
    /// expanded again); null when an allowing rule uses a value that cannot be expanded, <c>+</c> for the level in a deny rule.
    /// </summary>
    internal static string? Expand(string filter, string clientId, string? userName, bool deny)
    {
        if (!filter.Contains('%', StringComparison.Ordinal))
        {
            return filter;
        }

        var levels = filter.Split('/');
        for (var i = 0; i < levels.Length; i++)
        {
            var level = levels[i];
            var usesClient = level.Contains("%c", StringComparison.Ordinal);
            var usesUser = level.Contains("%u", StringComparison.Ordinal);
            if (!usesClient && !usesUser)
            {
                continue;
            }

            if ((usesClient && !IsSafe(clientId)) || (usesUser && !IsSafe(userName)))
            {
                if (!deny)
                {
                    return null;
                }

                levels[i] = "+";
                continue;
            }

            var expanded = new StringBuilder(level.Length + 32);
            for (var j = 0; j < level.Length; j++)
            {
                if (level[j] == '%' && j + 1 < level.Length && level[j + 1] is 'c' or 'u')
                {
                    expanded.Append(level[j + 1] == 'c' ? clientId : userName);
                    j++;
                }
                else
                {
                    expanded.Append(level[j]);
                }
            }

            levels[i] = expanded.ToString();
        }

        return string.Join('/', levels);
    }

    private static bool IsSafe(string? value) => !string.IsNullOrEmpty(value) && value.AsSpan().IndexOfAny('/', '+', '#') < 0;

    private sealed class Compiled(AclFile file)
    {
        public AclFile File { get; } = file;

        public FilterSet Read { get; } = new();

        public FilterSet Write { get; } = new();

        public FilterSet Deny { get; } = new();

        public void Add(AccessKind kind, string filter)
        {
            switch (kind)
            {
                case AccessKind.Read:
                    Read.Add(filter);
                    break;
                case AccessKind.Write:
                    Write.Add(filter);
                    break;
                case AccessKind.ReadWrite:
                    Read.Add(filter);
                    Write.Add(filter);
                    break;
                default:
                    Deny.Add(filter);
                    break;
            }
        }
    }

    /// <summary>Decisions per topic for one set of compiled rules; emptied when the rules change or it is full.</summary>
    private sealed class DecisionCache
    {
        private readonly Lock _lock = new();
        private readonly Dictionary<string, bool> _decisions = new(StringComparer.Ordinal);
        private Compiled? _owner;

        public bool GetOrAdd(Compiled compiled, string topic, Func<Compiled, string, bool> decide)
        {
            lock (_lock)
            {
                if (!ReferenceEquals(_owner, compiled))
                {
                    _decisions.Clear();
                    _owner = compiled;
                }
                else if (_decisions.TryGetValue(topic, out var known))
                {
                    return known;
                }

                var allowed = decide(compiled, topic);
                if (_decisions.Count >= CacheCapacity)
                {
                    _decisions.Clear();
                }

                _decisions[topic] = allowed;
                return allowed;
            }
        }
    }
}

/// <summary>The ACL file's rules in force, swapped whole when the file is reloaded.</summary>
internal sealed class AclRuleSource(AclFile initial)
{
    private volatile AclFile _current = initial;

    /// <summary>A source that never changes, for connections whose rules come only from their credentials.</summary>
    public static AclRuleSource None { get; } = new(AclFile.Empty);

    public AclFile Current
    {
        get => _current;
        set => _current = value;
    }
}
