namespace Orleans.Mqtt.Grains;

/// <summary>
/// Keeps the <c>limit</c> items with the smallest keys (ordinal) of those offered, in one pass over a collection that
/// is not sorted: a page of a listing without sorting, or copying, everything the silo holds.
/// </summary>
/// <typeparam name="T">The item.</typeparam>
internal sealed class SmallestKeys<T>(int limit)
{
    // A max-heap on the key: the root is the largest kept, the first to go when a smaller one arrives.
    private readonly PriorityQueue<T, string> _heap = new(limit + 1, Comparer<string>.Create(static (a, b) => string.CompareOrdinal(b, a)));

    /// <summary>Whether an item with <paramref name="key"/> would be kept now (so the caller may skip building it).</summary>
    public bool Wants(string key) =>
        limit > 0 && (_heap.Count < limit || (_heap.TryPeek(out _, out var largest) && string.CompareOrdinal(key, largest) < 0));

    /// <summary>Offers an item; it is kept if its key is among the <c>limit</c> smallest so far.</summary>
    public void Offer(string key, T item)
    {
        if (!Wants(key))
        {
            return;
        }

        _heap.Enqueue(item, key);
        if (_heap.Count > limit)
        {
            _heap.Dequeue();
        }
    }

    /// <summary>The kept items, smallest key first.</summary>
    public T[] ToSortedArray()
    {
        var items = new T[_heap.Count];
        for (var i = items.Length - 1; i >= 0; i--)
        {
            items[i] = _heap.Dequeue();
        }

        return items;
    }
}
