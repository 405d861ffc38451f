using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// This silo's copies of sessions homed on other silos, in the silo's own grain storage (<see cref="MqttGrainStorage"/>)
/// under the state name <see cref="StateName"/>, next to the sessions homed here (state name
/// <see cref="ClientSessionGrain.StateName"/>) and durable in the same group commit. A copy is replaced only by a
/// newer version, so a late or repeated write never takes a copy back.
/// </summary>
internal sealed class SessionCopyStore(IServiceProvider services, GrainRefs<IClientSessionGrain> sessionRefs)
{
    /// <summary>The state name copies are stored under.</summary>
    internal const string StateName = "session-copy";

    private IGrainStorage? _storage;

    private IGrainStorage Storage => _storage ??= services.GetRequiredKeyedService<IGrainStorage>(MqttGrainStorage.Name);

    /// <summary>Stores every copy newer than the one held; returns once all are durable.</summary>
    public Task StoreAsync(SessionCopy[] copies)
    {
        if (copies.Length == 1)
        {
            return StoreAsync(copies[0]);
        }

        var writes = new Task[copies.Length];
        for (var i = 0; i < copies.Length; i++)
        {
            writes[i] = StoreAsync(copies[i]);
        }

        return Task.WhenAll(writes);
    }

    /// <summary>The copy held for <paramref name="clientId"/>, or null.</summary>
    public async Task<SessionCopy?> FetchAsync(string clientId)
    {
        var stored = new GrainState<SessionState>();
        await Storage.ReadStateAsync(StateName, GrainId.Create(sessionRefs.Type, clientId), stored);
        return stored.RecordExists && stored.State is { } session ? new SessionCopy(clientId, session.StateVersion, session) : null;
    }

    private async Task StoreAsync(SessionCopy copy)
    {
        var grainId = GrainId.Create(sessionRefs.Type, copy.ClientId);
        var stored = new GrainState<SessionState>();
        for (var attempt = 0; ; attempt++)
        {
            await Storage.ReadStateAsync(StateName, grainId, stored);
            if (stored.RecordExists && stored.State is { } held && held.StateVersion >= copy.Version)
            {
                return;
            }

            try
            {
                if (copy.State is null)
                {
                    if (stored.RecordExists)
                    {
                        await Storage.ClearStateAsync(StateName, grainId, stored);
                    }
                }
                else
                {
                    stored.State = copy.State;
                    await Storage.WriteStateAsync(StateName, grainId, stored);
                }

                return;
            }
            catch (InconsistentStateException) when (attempt < 2)
            {
                // Written by another batch between the read and the write (the session moved to a new home that also
                // replicates here): read again and let the newer version win.
            }
        }
    }
}
