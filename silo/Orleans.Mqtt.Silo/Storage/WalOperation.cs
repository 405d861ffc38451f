namespace Orleans.Mqtt.Silo.Storage;

/// <summary>The operations a <see cref="WriteAheadLog"/> record can hold.</summary>
internal enum WalOperation : byte
{
    Upsert = 1,
    Delete = 2,
}

