namespace Orleans.Mqtt.Silo.Storage;

/// <summary>Receives one record of <see cref="FasterStore.ForEach"/>; the spans are valid during the call only.</summary>
internal delegate void RecordVisitor(ReadOnlySpan<byte> key, long version, ReadOnlySpan<byte> payload);
