using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Orleans.Mqtt.Topics;

/// <summary>
/// A subscription index: maps topic filters to sets of values (for example subscriber ids) and finds every value whose
/// filter matches a topic name.
/// </summary>
/// <remarks>
/// <para>
/// Filters without wildcards live in one dictionary and are found with a single lookup; filters with wildcards live in
/// a trie keyed by level, with a separate <c>'+'</c> child and <c>'#'</c> value set per node. <see cref="Match"/>
/// walks the topic on a <see cref="ReadOnlySpan{T}"/> and allocates nothing beyond growing the result list.
/// </para>
/// <para>
/// Not thread-safe. The caller must serialise every call that modifies the index (<see cref="Add"/>,
/// <see cref="Remove"/>); concurrent readers (<see cref="Match"/>, <see cref="Count"/>, <see cref="Entries"/>) are safe
/// only while no modification runs.
/// </para>
/// </remarks>
/// <typeparam name="T">The value type stored per filter.</typeparam>
public sealed class TopicIndex<T>
    where T : notnull
{
    private readonly IEqualityComparer<T> _comparer;
    private readonly Dictionary<string, ValueSlot<T>> _exact;
    private readonly Dictionary<string, ValueSlot<T>>.AlternateLookup<ReadOnlySpan<char>> _exactBySpan;
    private readonly Node _root = new();
    private int _count;
    private int _wildcardCount;

    /// <summary>Creates an empty index.</summary>
    /// <param name="comparer">Compares values; <see cref="EqualityComparer{T}.Default"/> when <see langword="null"/>.</param>
    public TopicIndex(IEqualityComparer<T>? comparer = null)
    {
        _comparer = comparer ?? EqualityComparer<T>.Default;
        _exact = new Dictionary<string, ValueSlot<T>>(StringComparer.Ordinal);
        _exactBySpan = _exact.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The number of (filter, value) entries.</summary>
    public int Count => _count;

    /// <summary>Whether the wildcard trie holds no nodes below the root; shows that removal prunes.</summary>
    internal bool IsTrieEmpty => _root.IsEmpty;

    /// <summary>Every (filter, value) entry, in no particular order; for snapshots and tests, not for the hot path.</summary>
    public IEnumerable<(string Filter, T Value)> Entries
    {
        get
        {
            foreach (var (filter, slot) in _exact)
            {
                foreach (var value in slot.Enumerate())
                {
                    yield return (filter, value);
                }
            }

            // Iterative so that a deep filter cannot overflow the stack; a null prefix marks the root.
            var pending = new Stack<(Node Node, string? Prefix)>();
            pending.Push((_root, null));
            while (pending.Count > 0)
            {
                var (node, prefix) = pending.Pop();
                if (prefix is not null)
                {
                    foreach (var value in node.Values.Enumerate())
                    {
                        yield return (prefix, value);
                    }
                }

                var hashFilter = prefix is null ? "#" : prefix + "/#";
                foreach (var value in node.MultiLevel.Enumerate())
                {
                    yield return (hashFilter, value);
                }

                if (node.SingleLevel is not null)
                {
                    pending.Push((node.SingleLevel, Join(prefix, "+")));
                }

                foreach (var (level, child) in node.Children())
                {
                    pending.Push((child, Join(prefix, level)));
                }
            }
        }
    }

    /// <summary>Adds <paramref name="value"/> under <paramref name="filter"/>.</summary>
    /// <param name="filter">A valid topic filter.</param>
    /// <param name="value">The value.</param>
    /// <returns><see langword="false"/> if the (filter, value) entry was already present; replace by Remove then Add.</returns>
    /// <exception cref="ArgumentException"><paramref name="filter"/> is not a valid topic filter.</exception>
    public bool Add(string filter, T value)
    {
        ArgumentNullException.ThrowIfNull(filter);
        ArgumentNullException.ThrowIfNull(value);
        if (!MqttTopic.IsValidTopicFilter(filter))
        {
            ThrowInvalidFilter(filter);
        }

        bool added;
        if (!MqttTopic.HasWildcard(filter))
        {
            ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_exact, filter, out _);
            added = slot.Add(value, _comparer);
        }
        else
        {
            ref var slot = ref FindOrCreateSlot(filter);
            added = slot.Add(value, _comparer);
            if (added)
            {
                _wildcardCount++;
            }
        }

        if (added)
        {
            _count++;
        }

        return added;
    }

    /// <summary>Removes <paramref name="value"/> from <paramref name="filter"/>, pruning what becomes empty.</summary>
    /// <param name="filter">The topic filter.</param>
    /// <param name="value">The value.</param>
    /// <returns><see langword="false"/> if the (filter, value) entry was absent.</returns>
    public bool Remove(string filter, T value)
    {
        ArgumentNullException.ThrowIfNull(filter);
        ArgumentNullException.ThrowIfNull(value);
        if (!MqttTopic.IsValidTopicFilter(filter))
        {
            return false;
        }

        if (!MqttTopic.HasWildcard(filter))
        {
            ref var slot = ref CollectionsMarshal.GetValueRefOrNullRef(_exact, filter);
            if (Unsafe.IsNullRef(ref slot) || !slot.Remove(value, _comparer))
            {
                return false;
            }

            if (slot.IsEmpty)
            {
                _exact.Remove(filter);
            }

            _count--;
            return true;
        }

        if (!RemoveFromTrie(filter, value))
        {
            return false;
        }

        _wildcardCount--;
        _count--;
        return true;
    }

    /// <summary>
    /// Appends to <paramref name="results"/> every value whose filter matches <paramref name="topic"/>; each
    /// (filter, value) entry at most once, in no particular order.
    /// </summary>
    /// <param name="topic">A valid topic name (not validated here).</param>
    /// <param name="results">The list to append to; it is not cleared.</param>
    public void Match(ReadOnlySpan<char> topic, List<T> results)
    {
        ArgumentNullException.ThrowIfNull(results);

        if (_exact.Count > 0 && _exactBySpan.TryGetValue(topic, out var exact))
        {
            exact.CopyTo(results);
        }

        if (_wildcardCount > 0)
        {
            MatchWildcards(topic, results);
        }
    }

    private void MatchWildcards(ReadOnlySpan<char> topic, List<T> results)
    {
        // Filters starting with a wildcard do not match topics starting with '$' (MQTT 4.7.2).
        var isSystemTopic = !topic.IsEmpty && topic[0] == '$';
        if (!isSystemTopic)
        {
            _root.MultiLevel.CopyTo(results);
        }

        // The root is never the end of a filter and every topic has at least one level, so start one level down.
        // Each trie node stands for exactly one number of consumed levels, so it is visited at most once per topic.
        var position = 0;
        var level = MqttTopic.NextLevel(topic, ref position);
        var stack = ArrayPool<Frame>.Shared.Rent(16);
        var depth = 0;
        var used = 0;
        try
        {
            if (!isSystemTopic && _root.SingleLevel is not null)
            {
                stack[depth++] = new Frame(_root.SingleLevel, position);
            }

            if (_root.TryGetChild(level, out var first))
            {
                stack[depth++] = new Frame(first, position);
            }

            used = depth;
            while (depth > 0)
            {
                var (node, next) = stack[--depth];

                // '#' also matches the parent level: "a/#" matches "a".
                node.MultiLevel.CopyTo(results);
                if (next < 0)
                {
                    node.Values.CopyTo(results);
                    continue;
                }

                level = MqttTopic.NextLevel(topic, ref next);
                if (depth + 2 > stack.Length)
                {
                    stack = Grow(stack, used);
                }

                if (node.SingleLevel is not null)
                {
                    stack[depth++] = new Frame(node.SingleLevel, next);
                }

                if (node.TryGetChild(level, out var child))
                {
                    stack[depth++] = new Frame(child, next);
                }

                used = Math.Max(used, depth);
            }
        }
        finally
        {
            // Clear only what was used so pooled arrays do not keep trie nodes alive.
            Array.Clear(stack, 0, used);
            ArrayPool<Frame>.Shared.Return(stack);
        }
    }

    private static Frame[] Grow(Frame[] stack, int used)
    {
        var larger = ArrayPool<Frame>.Shared.Rent(stack.Length * 2);
        Array.Copy(stack, larger, stack.Length);
        Array.Clear(stack, 0, used);
        ArrayPool<Frame>.Shared.Return(stack);
        return larger;
    }

    private ref ValueSlot<T> FindOrCreateSlot(string filter)
    {
        var node = _root;
        var position = 0;
        while (true)
        {
            var start = position;
            var level = MqttTopic.NextLevel(filter, ref position);
            if (IsLevel(level, MqttTopic.MultiLevelWildcard))
            {
                return ref node.MultiLevel;
            }

            if (IsLevel(level, MqttTopic.SingleLevelWildcard))
            {
                node = node.SingleLevel ??= new Node();
            }
            else
            {
                node = node.GetOrAddChild(filter, start, level.Length);
            }

            if (position < 0)
            {
                return ref node.Values;
            }
        }
    }

    private bool RemoveFromTrie(string filter, T value)
    {
        // Path of (node, level start, level length) from the first level down, kept for pruning.
        var path = new List<(Node Node, int Start, int Length)>();
        var node = _root;
        var position = 0;
        var removed = false;
        while (true)
        {
            var start = position;
            var level = MqttTopic.NextLevel(filter, ref position);
            if (IsLevel(level, MqttTopic.MultiLevelWildcard))
            {
                removed = node.MultiLevel.Remove(value, _comparer);
                break;
            }

            Node? next;
            if (IsLevel(level, MqttTopic.SingleLevelWildcard))
            {
                next = node.SingleLevel;
            }
            else
            {
                node.TryGetChild(level, out next);
            }

            if (next is null)
            {
                return false;
            }

            path.Add((next, start, level.Length));
            node = next;
            if (position < 0)
            {
                removed = node.Values.Remove(value, _comparer);
                break;
            }
        }

        if (!removed)
        {
            return false;
        }

        for (var i = path.Count - 1; i >= 0; i--)
        {
            var (child, start, length) = path[i];
            if (!child.IsEmpty)
            {
                break;
            }

            var parent = i == 0 ? _root : path[i - 1].Node;
            var level = filter.AsSpan(start, length);
            if (IsLevel(level, MqttTopic.SingleLevelWildcard))
            {
                parent.SingleLevel = null;
            }
            else
            {
                parent.RemoveChild(level);
            }
        }

        return true;
    }

    private static bool IsLevel(ReadOnlySpan<char> level, char wildcard) => level.Length == 1 && level[0] == wildcard;

    private static string Join(string? prefix, string level) => prefix is null ? level : prefix + "/" + level;

    private static void ThrowInvalidFilter(string filter) =>
        throw new ArgumentException($"'{filter}' is not a valid MQTT topic filter.", nameof(filter));

    private readonly record struct Frame(Node Node, int Next);

    /// <summary>A trie node: the filters whose levels so far lead here.</summary>
    private sealed class Node
    {
        /// <summary>Values of filters that end at this node.</summary>
        public ValueSlot<T> Values;

        /// <summary>Values of filters that continue with a final <c>'#'</c> level after this node.</summary>
        public ValueSlot<T> MultiLevel;

        /// <summary>The child for a <c>'+'</c> level.</summary>
        public Node? SingleLevel;

        // Most nodes of a large index have one literal child, so it is kept inline; a dictionary only from two on.
        private string? _singleKey;
        private Node? _singleChild;
        private Dictionary<string, Node>.AlternateLookup<ReadOnlySpan<char>> _children;

        public bool IsEmpty =>
            Values.IsEmpty && MultiLevel.IsEmpty && SingleLevel is null && _singleChild is null
            && (_children.Dictionary is null || _children.Dictionary.Count == 0);

        public bool TryGetChild(ReadOnlySpan<char> level, out Node child)
        {
            if (_singleChild is not null && level.SequenceEqual(_singleKey))
            {
                child = _singleChild;
                return true;
            }

            if (_children.Dictionary is not null)
            {
                return _children.TryGetValue(level, out child!);
            }

            child = null!;
            return false;
        }

        public Node GetOrAddChild(string filter, int start, int length)
        {
            var level = filter.AsSpan(start, length);
            if (TryGetChild(level, out var existing))
            {
                return existing;
            }

            var key = filter.Substring(start, length);
            var child = new Node();
            if (_singleChild is null && (_children.Dictionary is null || _children.Dictionary.Count == 0))
            {
                _singleKey = key;
                _singleChild = child;
                return child;
            }

            if (_children.Dictionary is null)
            {
                _children = new Dictionary<string, Node>(StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
            }

            if (_singleChild is not null)
            {
                _children.Dictionary.Add(_singleKey!, _singleChild);
                _singleKey = null;
                _singleChild = null;
            }

            _children.Dictionary.Add(key, child);
            return child;
        }

        public void RemoveChild(ReadOnlySpan<char> level)
        {
            if (_singleChild is not null && level.SequenceEqual(_singleKey))
            {
                _singleKey = null;
                _singleChild = null;
                return;
            }

            if (_children.Dictionary is not null)
            {
                _children.Remove(level);
                if (_children.Dictionary.Count == 0)
                {
                    _children = default;
                }
            }
        }

        public IEnumerable<(string Level, Node Child)> Children()
        {
            if (_singleChild is not null)
            {
                yield return (_singleKey!, _singleChild);
            }

            if (_children.Dictionary is not null)
            {
                foreach (var (level, child) in _children.Dictionary)
                {
                    yield return (level, child);
                }
            }
        }
    }
}
