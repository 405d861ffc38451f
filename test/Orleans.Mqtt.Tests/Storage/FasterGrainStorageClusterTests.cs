using Orleans.Mqtt.Silo.Storage;
using Orleans.TestingHost;
using Xunit;

namespace Orleans.Mqtt.Tests.Storage;

public sealed class FasterGrainStorageClusterTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "orleans-mqtt-tests", Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task Grain_state_survives_deactivation_on_a_two_silo_cluster()
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((silo, siloBuilder) => siloBuilder.AddFasterGrainStorage(StorageTestGrain.ProviderName, options =>
        {
            // Silo-local disk: one directory per silo.
            options.DataDirectory = Path.Combine(_root, silo.SiloName);
            options.MemorySizeBytes = FasterStorageOptions.MinMemorySizeBytes;
            options.IndexBuckets = 1 << 12;
        }));

        await using var cluster = builder.Build();
        await cluster.DeployAsync();

        for (var i = 0; i < 6; i++)
        {
            var grain = cluster.Client.GetGrain<IStorageTestGrain>($"grain-{i}");
            await grain.Write(i);
            var written = await grain.Write(100 + i);
            Assert.Equal("2", written.ETag);

            await cluster.DeactivateAsync(grain);

            // The state is on the disk of the silo that wrote it: reactivate it there.
            using (new PlacementHintScope(written.Silo))
            {
                var read = await grain.Read();
                Assert.Equal(written.Silo, read.Silo);
                Assert.True(read.RecordExists);
                Assert.Equal(100 + i, read.Value);
                Assert.Equal("2", read.ETag);
            }
        }

        Assert.All(cluster.Silos, silo => Assert.True(
            Directory.Exists(Path.Combine(_root, silo.Name, "grain-state", StorageTestGrain.ProviderName, "checkpoints"))));
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }
}
