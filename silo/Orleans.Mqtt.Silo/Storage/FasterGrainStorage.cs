using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Grains;
using Orleans.Serialization;
using Orleans.Serialization.Serializers;
using Orleans.Storage;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>
/// Orleans grain storage on a silo-local FASTER KV store. A write or clear returns only once it is on disk
/// (group commit), so it survives the process being killed right after.
/// </summary>
/// <remarks>
/// Key: UTF-8 <c>providerName/stateName/grainType/grainKey</c>. Value: a version counter, which is the ETag,
/// followed by the state serialized with Orleans' binary <see cref="Serializer"/>. The ETag check
/// reads then writes; that is safe because Orleans runs one activation of a grain at a time, and this
/// store is only ever used by the silo that owns it.
/// </remarks>
internal sealed class FasterGrainStorage : IGrainStorage, ILocalGrainRecords, ILifecycleParticipant<ISiloLifecycle>, IAsyncDisposable
{
    private readonly string _name;
    private readonly byte[] _keyPrefix;
    private readonly Serializer _serializer;
    private readonly IActivatorProvider _activatorProvider;
    private readonly FasterStore _store;

    public FasterGrainStorage(
        string name,
        FasterStorageOptions options,
        Serializer serializer,
        IActivatorProvider activatorProvider,
        TimeProvider timeProvider,
        ILogger<FasterGrainStorage> logger)
    {
        _name = name;
        _keyPrefix = Encoding.UTF8.GetBytes(name + "/");
        _serializer = serializer;
        _activatorProvider = activatorProvider;
        Directory = Path.GetFullPath(Path.Combine(options.DataDirectory, "grain-state", name));
        _store = new FasterStore(Directory, options, timeProvider, logger);
    }

    /// <summary>The directory holding this provider's log and checkpoints.</summary>
    internal string Directory { get; }

    /// <summary>
    /// The store under this provider. The silo's route replica keeps its records in the same store
    /// (<see cref="FasterReplicaStore"/>), so a save of a session and of its routes shares one commit of one log.
    /// </summary>
    internal FasterStore Store => _store;

    /// <summary>Number of commits so far (write-ahead log syncs and full checkpoints).</summary>
    internal long CommitCount => _store.CommitCount;

    /// <summary>Number of full checkpoints written so far.</summary>
    internal long FullCheckpointCount => _store.FullCheckpointCount;

    /// <summary>Creates the provider named <paramref name="name"/> from the silo's services.</summary>
    public static FasterGrainStorage Create(IServiceProvider services, string name)
    {
        var options = services.GetRequiredService<IOptionsMonitor<FasterStorageOptions>>().Get(name);
        return new FasterGrainStorage(
            name,
            options,
            // Orleans' binary serializer: [GenerateSerializer] state types round-trip exactly (the silo's default
            // JSON serializer drops ReadOnlyMemory<byte> payloads), and it is smaller and faster. The same bytes as
            // through OrleansGrainStorageSerializer, which wraps it, with fewer arrays made (RecordSerializer).
            services.GetRequiredService<Serializer>(),
            services.GetRequiredService<IActivatorProvider>(),
            services.GetService<TimeProvider>() ?? TimeProvider.System,
            services.GetRequiredService<ILogger<FasterGrainStorage>>());
    }

    /// <inheritdoc />
    public void Participate(ISiloLifecycle lifecycle)
    {
        // Open before anything can activate a grain; close after grains have deactivated and written their state.
        lifecycle.Subscribe(
            OptionFormattingUtilities.Name<FasterGrainStorage>(_name),
            ServiceLifecycleStage.RuntimeInitialize,
            StartAsync,
            StopAsync);
    }

    /// <summary>Opens or recovers the store.</summary>
    internal Task StartAsync(CancellationToken cancellationToken) => _store.OpenAsync(cancellationToken);

    /// <summary>Takes a final checkpoint and closes the store.</summary>
    internal Task StopAsync(CancellationToken cancellationToken) => _store.CloseAsync();

    /// <summary>Releases the store without a final checkpoint (what a crash leaves is what recovery sees).</summary>
    public ValueTask DisposeAsync() => _store.DisposeAsync();

    /// <inheritdoc />
    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var key = RentKey(stateName, grainId, out var keyLength);
        try
        {
            using var record = await _store.ReadAsync(key, keyLength).ConfigureAwait(false);
            if (!record.Found)
            {
                grainState.State = _activatorProvider.GetActivator<T>().Create();
                grainState.ETag = null;
                grainState.RecordExists = false;
                return;
            }

            grainState.State = _serializer.Deserialize<T>(record.Payload);
            grainState.ETag = FormatETag(record.Version);
            grainState.RecordExists = true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(key);
        }
    }

    /// <inheritdoc />
    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var payload = RecordSerializer.Serialize(_serializer, grainState.State);
        var key = RentKey(stateName, grainId, out var keyLength);
        long version;
        try
        {
            version = await CheckETagAsync(key, keyLength, grainState.ETag, stateName, grainId, "write").ConfigureAwait(false) + 1;
            await _store.UpsertAsync(key, keyLength, version, payload).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(key);
        }

        await _store.WaitForCommitAsync().ConfigureAwait(false);
        grainState.ETag = FormatETag(version);
        grainState.RecordExists = true;
    }

    /// <inheritdoc />
    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var key = RentKey(stateName, grainId, out var keyLength);
        bool existed;
        try
        {
            existed = await CheckETagAsync(key, keyLength, grainState.ETag, stateName, grainId, "clear").ConfigureAwait(false) > 0;
            if (existed)
            {
                await _store.DeleteAsync(key, keyLength).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(key);
        }

        if (existed)
        {
            await _store.WaitForCommitAsync().ConfigureAwait(false);
        }

        grainState.ETag = null;
        grainState.RecordExists = false;
    }

    /// <inheritdoc />
    public IReadOnlyList<string> FindKeys(string stateName, GrainType grainType, Func<string, bool> filter)
    {
        // The keys' layout (see RentKey): the provider's prefix, then stateName/grainType/grainKey.
        byte[] prefix = [.. _keyPrefix, .. Encoding.UTF8.GetBytes($"{stateName}/{grainType}/")];
        var found = new List<string>();
        _store.ForEach((key, _, _) =>
        {
            if (key.StartsWith(prefix.AsSpan()))
            {
                var grainKey = Encoding.UTF8.GetString(key[prefix.Length..]);
                if (filter(grainKey))
                {
                    found.Add(grainKey);
                }
            }
        });
        return found;
    }

    private static string FormatETag(long version) => version.ToString(CultureInfo.InvariantCulture);

    /// <summary>Returns the stored version (0 when there is no record) after checking it against <paramref name="eTag"/>.</summary>
    private async ValueTask<long> CheckETagAsync(byte[] key, int keyLength, string? eTag, string stateName, GrainId grainId, string operation)
    {
        long stored;
        using (var record = await _store.ReadAsync(key, keyLength).ConfigureAwait(false))
        {
            stored = record.Found ? record.Version : 0;
        }

        var matches = eTag is null
            ? stored == 0
            : stored != 0 && long.TryParse(eTag, NumberStyles.None, CultureInfo.InvariantCulture, out var expected) && expected == stored;
        if (!matches)
        {
            var storedETag = stored == 0 ? null : FormatETag(stored);
            throw new InconsistentStateException(
                $"ETag mismatch on {operation} of state '{stateName}' of grain {grainId} in storage '{_name}': stored {storedETag ?? "<none>"}, given {eTag ?? "<none>"}",
                storedETag,
                eTag);
        }

        return stored;
    }

    private byte[] RentKey(string stateName, GrainId grainId, out int length)
    {
        var type = grainId.Type.AsSpan();
        var id = grainId.Key.AsSpan();
        var buffer = ArrayPool<byte>.Shared.Rent(_keyPrefix.Length + Encoding.UTF8.GetMaxByteCount(stateName.Length) + type.Length + id.Length + 2);
        var span = buffer.AsSpan();
        _keyPrefix.CopyTo(span);
        var position = _keyPrefix.Length;
        position += Encoding.UTF8.GetBytes(stateName, span[position..]);
        span[position++] = (byte)'/';
        type.CopyTo(span[position..]);
        position += type.Length;
        span[position++] = (byte)'/';
        id.CopyTo(span[position..]);
        length = position + id.Length;
        return buffer;
    }
}
