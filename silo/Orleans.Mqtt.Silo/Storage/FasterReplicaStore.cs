using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Grains;
using Orleans.Serialization;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>
/// The silo-local durable copy of the route replica: persistent sessions' routes and retained messages in a FASTER
/// KV of their own, with the same group commit as the grain storage (durable when a save completes).
/// </summary>
internal sealed partial class FasterReplicaStore : IReplicaStore, ILifecycleParticipant<ISiloLifecycle>
{
    private const string RoutesPrefix = "r/";
    private const string RetainedPrefix = "t/";

    private readonly FasterStore _store;
    private readonly Serializer _serializer;
    private readonly ILogger _logger;

    private FasterReplicaStore(FasterStore store, Serializer serializer, ILogger logger)
    {
        _store = store;
        _serializer = serializer;
        _logger = logger;
    }

    public static FasterReplicaStore Create(IServiceProvider services, string directory)
    {
        var options = new FasterStorageOptions
        {
            DataDirectory = directory,
            MemorySizeBytes = 64L * 1024 * 1024,
            IndexBuckets = 1L << 16,
        };
        var logger = services.GetRequiredService<ILogger<FasterReplicaStore>>();
        var store = new FasterStore(Path.GetFullPath(directory), options, services.GetService<TimeProvider>() ?? TimeProvider.System, logger);
        return new FasterReplicaStore(store, services.GetRequiredService<Serializer>(), logger);
    }

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(FasterReplicaStore), ServiceLifecycleStage.RuntimeInitialize, _store.OpenAsync, _ => _store.CloseAsync());

    public async Task SaveRoutesAsync(string clientId, ClientRoutes? routes)
    {
        var key = Encoding.UTF8.GetBytes(RoutesPrefix + clientId);
        if (routes is null)
        {
            await _store.DeleteAsync(key, key.Length).ConfigureAwait(false);
        }
        else
        {
            await _store.UpsertAsync(key, key.Length, routes.Version, _serializer.SerializeToArray(routes)).ConfigureAwait(false);
        }

        await _store.WaitForCommitAsync().ConfigureAwait(false);
    }

    public async Task SaveRetainedAsync(RetainedUpdate update)
    {
        var key = Encoding.UTF8.GetBytes(RetainedPrefix + update.Topic);
        if (update.Message is null)
        {
            await _store.DeleteAsync(key, key.Length).ConfigureAwait(false);
        }
        else
        {
            await _store.UpsertAsync(key, key.Length, update.Version, _serializer.SerializeToArray(update)).ConfigureAwait(false);
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

    [LoggerMessage(Level = LogLevel.Error, Message = "Replica record {Key} could not be read and was skipped")]
    private static partial void LogUnreadableRecord(ILogger logger, Exception ex, string key);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Count} replica records could not be read")]
    private static partial void LogSkipped(ILogger logger, int count);
}
