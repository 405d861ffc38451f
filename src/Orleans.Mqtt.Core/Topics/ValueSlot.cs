using System.Runtime.CompilerServices;

namespace Orleans.Mqtt.Topics;

/// <summary>
/// A set of values kept as lean as possible: nothing while empty, the value inline while it holds one,
/// a <see cref="HashSet{T}"/> from two values on.
/// </summary>
/// <remarks>
/// A mutable struct: always use it through a <see langword="ref"/> (a field or a dictionary value ref), never a copy.
/// </remarks>
internal struct ValueSlot<T>
    where T : notnull
{
    // Marks "exactly one value, held in _single" without spending a separate field on a count.
    private static readonly object SingleMarker = new();

    private T _single;

    // null: empty; SingleMarker: one value in _single; otherwise a HashSet<T> with at least two values.
    private object? _state;

    public readonly bool IsEmpty => _state is null;

    public readonly int Count => _state switch
    {
        null => 0,
        _ when ReferenceEquals(_state, SingleMarker) => 1,
        _ => Unsafe.As<HashSet<T>>(_state).Count,
    };

    public bool Add(T value, IEqualityComparer<T> comparer)
    {
        if (_state is null)
        {
            _single = value;
            _state = SingleMarker;
            return true;
        }

        if (ReferenceEquals(_state, SingleMarker))
        {
            if (comparer.Equals(_single, value))
            {
                return false;
            }

            _state = new HashSet<T>(comparer) { _single, value };
            _single = default!;
            return true;
        }

        return Unsafe.As<HashSet<T>>(_state).Add(value);
    }

    public bool Remove(T value, IEqualityComparer<T> comparer)
    {
        if (_state is null)
        {
            return false;
        }

        if (ReferenceEquals(_state, SingleMarker))
        {
            if (!comparer.Equals(_single, value))
            {
                return false;
            }

            _single = default!;
            _state = null;
            return true;
        }

        var set = Unsafe.As<HashSet<T>>(_state);
        if (!set.Remove(value))
        {
            return false;
        }

        if (set.Count == 1)
        {
            foreach (var remaining in set)
            {
                _single = remaining;
            }

            _state = SingleMarker;
        }

        return true;
    }

    public readonly void CopyTo(List<T> results)
    {
        if (_state is null)
        {
            return;
        }

        if (ReferenceEquals(_state, SingleMarker))
        {
            results.Add(_single);
        }
        else
        {
            // HashSet<T> is an ICollection<T>, so AddRange copies without an enumerator.
            results.AddRange(Unsafe.As<HashSet<T>>(_state));
        }
    }

    public readonly IEnumerable<T> Enumerate()
    {
        if (_state is null)
        {
            return [];
        }

        if (ReferenceEquals(_state, SingleMarker))
        {
            return [_single];
        }

        return Unsafe.As<HashSet<T>>(_state);
    }
}
