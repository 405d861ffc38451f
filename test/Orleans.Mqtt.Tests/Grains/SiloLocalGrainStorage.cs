using Orleans.Mqtt.Grains;
using Orleans.Serialization;
using Orleans.Storage;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// Grain storage that lives in one silo's memory and nowhere else, as the FASTER store lives on one silo's disk:
/// a grain that moves to another silo does not find its state there unless it brings it along. Records are copies,
/// taken at each write and handed out at each read, as a serializing store would: a change the grain did not write
/// is not in storage.
/// </summary>
internal sealed class SiloLocalGrainStorage(DeepCopier copier, SiloLocalGrainStorage? previous = null) : IGrainStorage, ILocalGrainRecords
{
    // A silo restarted on its storage gets the records of its previous run (the copier is the new silo's).
    private readonly Dictionary<string, (long Version, object State)> _records = previous?._records ?? [];
    private readonly HashSet<string> _refused = [];

    /// <summary>From now on, writes of state <paramref name="stateName"/> fail, as on a disk that went bad.</summary>
    public void RefuseWrites(string stateName)
    {
        lock (_records)
        {
            _refused.Add(stateName);
        }
    }

    /// <summary>A copy of the stored state of a grain, or null.</summary>
    public T? Stored<T>(string stateName, GrainId grainId)
        where T : class
    {
        lock (_records)
        {
            return _records.TryGetValue(Key(stateName, grainId), out var record) ? copier.Copy((T)record.State) : null;
        }
    }

    /// <summary>Whether a record of the grain's state is stored (no copy taken: works after the silo stopped).</summary>
    public bool Contains(string stateName, GrainId grainId)
    {
        lock (_records)
        {
            return _records.ContainsKey(Key(stateName, grainId));
        }
    }

    /// <summary>
    /// Puts <paramref name="state"/> in place of the stored record, as a restore from an older backup would; the caller
    /// hands it over (no copy is taken, so this works while the silo is stopped).
    /// </summary>
    public void Replace<T>(string stateName, GrainId grainId, T state)
        where T : class
    {
        lock (_records)
        {
            var key = Key(stateName, grainId);
            var version = _records.TryGetValue(key, out var record) ? record.Version : 0;
            _records[key] = (version + 1, state);
        }
    }

    public IReadOnlyList<string> FindKeys(string stateName, GrainType grainType, Func<string, bool> filter)
    {
        var prefix = $"{stateName}/{grainType}/";
        lock (_records)
        {
            return [.. _records.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Select(k => k[prefix.Length..]).Where(filter)];
        }
    }

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        lock (_records)
        {
            if (_records.TryGetValue(Key(stateName, grainId), out var record))
            {
                grainState.State = copier.Copy((T)record.State);
                grainState.ETag = record.Version.ToString(System.Globalization.CultureInfo.InvariantCulture);
                grainState.RecordExists = true;
            }
            else
            {
                grainState.State = Activator.CreateInstance<T>();
                grainState.ETag = null;
                grainState.RecordExists = false;
            }
        }

        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        lock (_records)
        {
            if (_refused.Contains(stateName))
            {
                throw new IOException($"Writes of state '{stateName}' are refused by this test's storage.");
            }

            var key = Key(stateName, grainId);
            var version = Check(key, grainState.ETag) + 1;
            _records[key] = (version, copier.Copy(grainState.State)!);
            grainState.ETag = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
            grainState.RecordExists = true;
        }

        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        lock (_records)
        {
            var key = Key(stateName, grainId);
            Check(key, grainState.ETag);
            _records.Remove(key);
            grainState.ETag = null;
            grainState.RecordExists = false;
        }

        return Task.CompletedTask;
    }

    private long Check(string key, string? eTag)
    {
        var stored = _records.TryGetValue(key, out var record) ? record.Version : 0;
        var given = eTag is null ? 0 : long.Parse(eTag, System.Globalization.CultureInfo.InvariantCulture);
        if (stored != given)
        {
            throw new InconsistentStateException($"ETag mismatch on {key}: stored {stored}, given {given}", stored.ToString(System.Globalization.CultureInfo.InvariantCulture), eTag);
        }

        return stored;
    }

    private static string Key(string stateName, GrainId grainId) => stateName + "/" + grainId;
}
