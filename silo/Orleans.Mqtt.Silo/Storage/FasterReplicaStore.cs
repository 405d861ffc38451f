using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Grains;
using Orleans.Serialization;
using Orleans.Storage;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>
/// The silo-local durable copy of the route replica: persistent sessions' routes and retained messages, kept in the
/// FASTER store of the session grain storage (<see cref="FasterGrainStorage.Store"/>) under keys of their own
/// (<c>r/</c> and <c>t/</c>, which no grain storage key starts with). A session's save and its routes' save are then
/// two records of one write-ahead log, made durable by the same commit: one sync and one commit loop for both, not
/// one each. Durable when a save completes, as before.
/// </summary>
/// <remarks>
/// Until Dec 2026 the replica had a store of its own in <c>DataDirectory/replica</c>. A silo that finds that directory
/// moves its records into the shared store before it loads the replica (<see cref="MigrateAsync"/>), then deletes it.
/// </remarks>
internal sealed partial class FasterReplicaStore : IReplicaStore, ILifecycleParticipant<ISiloLifecycle>
{
    private const string RoutesPrefix = "r/";
    private const string RetainedPrefix = "t/";

    private readonly FasterStore _store;
    private readonly string _legacyDirectory;
    private readonly Serializer _serializer;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    internal FasterReplicaStore(FasterStore store, string legacyDirectory, Serializer serializer, TimeProvider timeProvider, ILogger logger)
    {
        _store = store;
        _legacyDirectory = Path.GetFullPath(legacyDirectory);
        _serializer = serializer;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <summary>
    /// The replica store over the store of grain storage provider <paramref name="storageName"/>;
    /// <paramref name="legacyDirectory"/> is where a replica store of its own was kept before, moved in at start.
    /// </summary>
    public static FasterReplicaStore Create(IServiceProvider services, string storageName, string legacyDirectory)
    {
        var storage = services.GetRequiredKeyedService<IGrainStorage>(storageName) as FasterGrainStorage
            ?? throw new InvalidOperationException($"The route replica is kept in the FASTER grain storage '{storageName}', which is not registered as one.");
        return new FasterReplicaStore(
            storage.Store,
            legacyDirectory,
            services.GetRequiredService<Serializer>(),
            services.GetService<TimeProvider>() ?? TimeProvider.System,
            services.GetRequiredService<ILogger<FasterReplicaStore>>());
    }

    // The shared store opens (and closes) with the grain storage, at RuntimeInitialize; the move runs after it opened
    // and before ReplicaLoader reads the replica (ApplicationServices).
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(FasterReplicaStore), ServiceLifecycleStage.RuntimeServices, MigrateAsync);

    /// <summary>
    /// Moves the records of a replica store of its own (the layout before the shared store) into the shared store,
    /// waits for their commit, then deletes the old directory (renamed first, so a crash midway leaves either the old
    /// store whole, which is moved again, or a renamed one, which is deleted).
    /// </summary>
    internal async Task MigrateAsync(CancellationToken cancellationToken)
    {
        var retired = _legacyDirectory + ".moved";
        if (Directory.Exists(_legacyDirectory))
        {
            var started = _timeProvider.GetTimestamp();
            var options = new FasterStorageOptions { DataDirectory = _legacyDirectory, MemorySizeBytes = 64L * 1024 * 1024, IndexBuckets = 1L << 16 };
            var legacy = new FasterStore(_legacyDirectory, options, _timeProvider, _logger);
            await legacy.OpenAsync(cancellationToken).ConfigureAwait(false);
            var moved = 0;
            try
            {
                legacy.ForEach((key, version, payload) =>
                {
                    _store.Upsert(key.ToArray(), key.Length, version, payload);
                    moved++;
                });
            }
            finally
            {
                await legacy.CloseAsync().ConfigureAwait(false);
            }

            await _store.WaitForCommitAsync().ConfigureAwait(false);
            Directory.Move(_legacyDirectory, retired);
            LogMigrated(_logger, moved, _legacyDirectory, _timeProvider.GetElapsedTime(started).TotalMilliseconds);
        }

        if (Directory.Exists(retired))
        {
            Directory.Delete(retired, recursive: true);
        }
    }

    public async Task SaveRoutesAsync(string clientId, ClientRoutes? routes)
    {
        var key = Key(RoutesPrefix, clientId);
        if (routes is null)
        {
            await _store.DeleteAsync(key, key.Length).ConfigureAwait(false);
        }
        else
        {
            await _store.UpsertAsync(key, key.Length, routes.Version, RecordSerializer.Serialize(_serializer, routes)).ConfigureAwait(false);
        }

        await _store.WaitForCommitAsync().ConfigureAwait(false);
    }

    public async Task SaveRetainedAsync(RetainedUpdate update)
    {
        var key = Key(RetainedPrefix, update.Topic);
        if (update.Message is null)
        {
            await _store.DeleteAsync(key, key.Length).ConfigureAwait(false);
        }
        else
        {
            await _store.UpsertAsync(key, key.Length, update.Version, RecordSerializer.Serialize(_serializer, update)).ConfigureAwait(false);
        }

        await _store.WaitForCommitAsync().ConfigureAwait(false);
    }

    public Task<(IReadOnlyList<ClientRoutes> Routes, IReadOnlyList<RetainedUpdate> Retained)> LoadAsync()
    {
        var routes = new List<ClientRoutes>();
        var retained = new List<RetainedUpdate>();
        var skipped = 0;
        _store.ForEach((key, _, payload) =>
        {
            try
            {
                if (key.StartsWith("r/"u8))
                {
                    routes.Add(_serializer.Deserialize<ClientRoutes>(payload.ToArray())!);
                }
                else if (key.StartsWith("t/"u8))
                {
                    retained.Add(_serializer.Deserialize<RetainedUpdate>(payload.ToArray())!);
                }
            }
            catch (Exception ex)
            {
                // One unreadable record must not keep the silo from starting; it is logged and counted.
                skipped++;
                LogUnreadableRecord(_logger, ex, Encoding.UTF8.GetString(key));
            }
        });
        if (skipped > 0)
        {
            LogSkipped(_logger, skipped);
        }

        return Task.FromResult<(IReadOnlyList<ClientRoutes>, IReadOnlyList<RetainedUpdate>)>((routes, retained));
    }

    // The UTF-8 key without the prefixed string made first.
    private static byte[] Key(string prefix, string name)
    {
        var key = new byte[Encoding.UTF8.GetByteCount(prefix) + Encoding.UTF8.GetByteCount(name)];
        var length = Encoding.UTF8.GetBytes(prefix, key);
        Encoding.UTF8.GetBytes(name, key.AsSpan(length));
        return key;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Replica record {Key} could not be read and was skipped")]
    private static partial void LogUnreadableRecord(ILogger logger, Exception ex, string key);

    [LoggerMessage(Level = LogLevel.Information, Message = "Moved {Count} route replica records from {Directory} into the session storage's store in {ElapsedMs:F0} ms; the old directory is deleted")]
    private static partial void LogMigrated(ILogger logger, int count, string directory, double elapsedMs);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Count} replica records could not be read")]
    private static partial void LogSkipped(ILogger logger, int count);
}
