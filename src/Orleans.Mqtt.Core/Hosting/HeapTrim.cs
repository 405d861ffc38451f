namespace Orleans.Mqtt.Hosting;

/// <summary>The collection a look at the heap asks the <see cref="HeapTrimmer"/> to start.</summary>
internal enum HeapTrim
{
    /// <summary>None.</summary>
    None,

    /// <summary>A background full collection: it frees the oldest generation's dead objects beside the broker's threads.</summary>
    Background,

    /// <summary>A blocking, compacting full collection that returns the free memory to the system.</summary>
    Compacting,
}
