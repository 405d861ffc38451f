using Orleans.Concurrency;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// Writes the session copies other silos send to this silo's <see cref="SessionCopyStore"/>. Reentrant: batches from
/// several homes are written at once and share the storage's group commit instead of waiting for each other.
/// </summary>
[SiloPinnedPlacement]
[Reentrant]
internal sealed class SessionCopyGrain(SessionCopyStore store) : Grain, ISessionCopyGrain
{
    public Task Store(SessionCopy[] copies) => store.StoreAsync(copies);

    public Task<long[]> Versions(string[] clientIds) => store.VersionsAsync(clientIds);

    public Task<SessionCopy?> Fetch(string clientId) => store.FetchAsync(clientId);
}
