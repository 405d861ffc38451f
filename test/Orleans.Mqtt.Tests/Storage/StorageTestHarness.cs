using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Mqtt.Silo.Storage;
using Orleans.Serialization;
using Orleans.Serialization.Serializers;

namespace Orleans.Mqtt.Tests.Storage;

/// <summary>
/// A temporary directory plus a factory for FASTER grain storage instances over it. Disposing it releases
/// every instance it opened (even after a failed assertion) and deletes the directory.
/// </summary>
internal sealed class StorageTestHarness : IAsyncDisposable
{
    private readonly ServiceProvider _services;
    private readonly List<FasterGrainStorage> _opened = [];

    public StorageTestHarness()
    {
        Root = Path.Combine(Path.GetTempPath(), "orleans-mqtt-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
        _services = new ServiceCollection()
            .AddSerializer(serializer => serializer.AddAssembly(typeof(TestState).Assembly).AddAssembly(typeof(Orleans.Mqtt.Grains.SessionState).Assembly).AddAssembly(typeof(Orleans.Mqtt.Grains.ClientRoutes).Assembly))
            .BuildServiceProvider();
    }

    public string Root { get; }

    /// <summary>The serializer the storages use.</summary>
    public Serializer Serializer => _services.GetRequiredService<Serializer>();

    /// <summary>Small sizes so tests stay light and big ones spill to disk.</summary>
    public static FasterStorageOptions SmallOptions(string dataDirectory) => new()
    {
        DataDirectory = dataDirectory,
        MemorySizeBytes = FasterStorageOptions.MinMemorySizeBytes,
        IndexBuckets = 1 << 12,
    };

    /// <summary>Creates and opens (or recovers) a storage named <paramref name="name"/> over <see cref="Root"/>.</summary>
    public async Task<FasterGrainStorage> OpenAsync(string name = "test", Action<FasterStorageOptions>? configure = null)
    {
        var options = SmallOptions(Root);
        configure?.Invoke(options);
        var storage = new FasterGrainStorage(
            name,
            options,
            _services.GetRequiredService<Serializer>(),
            _services.GetRequiredService<IActivatorProvider>(),
            TimeProvider.System,
            NullLogger<FasterGrainStorage>.Instance);
        _opened.Add(storage);
        await storage.StartAsync(CancellationToken.None);
        return storage;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var storage in _opened)
        {
            await storage.DisposeAsync();
        }

        await _services.DisposeAsync();
        Directory.Delete(Root, recursive: true);
    }
}
