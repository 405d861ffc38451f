namespace Orleans.Mqtt.Silo.Storage;

/// <summary>Receives one record of <see cref="WriteAheadLog.Replay"/>; the spans are valid during the call only.</summary>
internal delegate void WalRecordVisitor(WalOperation operation, ReadOnlySpan<byte> key, long version, ReadOnlySpan<byte> payload);
