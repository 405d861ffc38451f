using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// This silo's copies of sessions homed on other silos, in the silo's own grain storage (<see cref="MqttGrainStorage"/>)
/// under the state name <see cref="StateName"/>, next to the sessions homed here (state name
/// <see cref="ClientSessionGrain.StateName"/>) and durable in the same group commit. A copy is replaced only by a
/// newer version, so a late or repeated write never takes a copy back. Writes of one client id's copy take turns
/// (a lock stripe per client id): the storage's ETag check reads and then writes, so two batches carrying the same
/// session (a save and a re-replication pass, or two saves merged into one batch) could otherwise both pass the
/// check and the older land last.
/// </summary>
internal sealed class SessionCopyStore(IServiceProvider services, GrainRefs<IClientSessionGrain> sessionRefs)
{
    /// <summary>The state name copies are stored under.</summary>
    internal const string StateName = "session-copy";

    private const int Stripes = 64;
    private readonly SemaphoreSlim[] _stripes = CreateStripes();
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

    /// <summary>The version of the copy held for each of <paramref name="clientIds"/> (0: none).</summary>
    public async Task<long[]> VersionsAsync(string[] clientIds)
    {
        var reads = new Task<SessionCopy?>[clientIds.Length];
        for (var i = 0; i < clientIds.Length; i++)
        {
            reads[i] = FetchAsync(clientIds[i]);
        }

        var versions = new long[clientIds.Length];
        for (var i = 0; i < reads.Length; i++)
        {
            versions[i] = (await reads[i])?.Version ?? 0;
        }

        return versions;
    }

    /// <summary>
    /// Drops the copy held for <paramref name="clientId"/> if its version is at most <paramref name="version"/> (a newer
    /// one arrived meanwhile: kept); returns whether it dropped one.
    /// </summary>
    public Task<bool> DropAsync(string clientId, long version) => DropIfAsync(clientId, held => held.StateVersion <= version);

    /// <summary>
    /// Drops the copy held for <paramref name="clientId"/> if <paramref name="isStale"/> says so, taking turns with the
    /// writes of that copy; returns whether it dropped one.
    /// </summary>
    public async Task<bool> DropIfAsync(string clientId, Func<SessionState, bool> isStale)
    {
        var grainId = GrainId.Create(sessionRefs.Type, clientId);
        var stripe = Stripe(clientId);
        await stripe.WaitAsync();
        try
        {
            var stored = new GrainState<SessionState>();
            await Storage.ReadStateAsync(StateName, grainId, stored);
            if (!stored.RecordExists || stored.State is not { } held || !isStale(held))
            {
                return false;
            }

            await Storage.ClearStateAsync(StateName, grainId, stored);
            return true;
        }
        catch (InconsistentStateException)
        {
            // Written since it was read by something that does not take the stripe: whatever it wrote stays.
            return false;
        }
        finally
        {
            stripe.Release();
        }
    }

    private static SemaphoreSlim[] CreateStripes()
    {
        var stripes = new SemaphoreSlim[Stripes];
        for (var i = 0; i < stripes.Length; i++)
        {
            stripes[i] = new SemaphoreSlim(1, 1);
        }

        return stripes;
    }

    private SemaphoreSlim Stripe(string clientId) => _stripes[(int)((uint)StringComparer.Ordinal.GetHashCode(clientId) % Stripes)];

    private async Task StoreAsync(SessionCopy copy)
    {
        var stripe = Stripe(copy.ClientId);
        await stripe.WaitAsync();
        try
        {
            await StoreLockedAsync(copy);
        }
        finally
        {
            stripe.Release();
        }
    }

    private async Task StoreLockedAsync(SessionCopy copy)
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
                // Written between the read and the write by something that does not take the stripe (nothing here does;
                // kept for a storage shared with another writer): read again and let the newer version win.
            }
        }
    }
}
