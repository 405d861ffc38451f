using Orleans.Mqtt.Silo.Storage;
using Xunit;

namespace Orleans.Mqtt.Tests.Storage;

/// <summary>The silo's name is its data directory's identity: made once, kept, never silently replaced.</summary>
public sealed class SiloNameFileTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "silo-name-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public void A_new_directory_gets_a_name_that_every_later_start_reads_back()
    {
        var data = Path.Combine(_root, "data");
        var name = SiloNameFile.ReadOrCreate(data, configuredName: null);

        Assert.StartsWith("silo-", name, StringComparison.Ordinal);
        Assert.Equal(name, SiloNameFile.ReadOrCreate(data, configuredName: null));
        Assert.Equal(name, SiloNameFile.ReadOrCreate(data, configuredName: name));
        Assert.NotEqual(name, SiloNameFile.ReadOrCreate(Path.Combine(_root, "other"), configuredName: null));
    }

    [Fact]
    public void A_configured_name_is_kept_at_the_first_start_and_a_different_one_later_is_refused()
    {
        var data = Path.Combine(_root, "data");
        Assert.Equal("mqtt-silo-0", SiloNameFile.ReadOrCreate(data, "mqtt-silo-0"));
        Assert.Equal("mqtt-silo-0", SiloNameFile.ReadOrCreate(data, configuredName: null));

        var error = Assert.Throws<OrleansConfigurationException>(() => SiloNameFile.ReadOrCreate(data, "mqtt-silo-1"));
        Assert.Contains("Orleans:Name", error.Message, StringComparison.Ordinal);
        Assert.Contains("mqtt-silo-0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_damaged_name_file_or_a_bad_configured_name_stops_the_start_with_the_setting_named()
    {
        var data = Path.Combine(_root, "data");
        Directory.CreateDirectory(data);
        File.WriteAllText(Path.Combine(data, SiloNameFile.FileName), "  \n");
        var damaged = Assert.Throws<OrleansConfigurationException>(() => SiloNameFile.ReadOrCreate(data, configuredName: null));
        Assert.Contains(SiloNameFile.FileName, damaged.Message, StringComparison.Ordinal);

        var bad = Assert.Throws<OrleansConfigurationException>(() => SiloNameFile.ReadOrCreate(Path.Combine(_root, "fresh"), "has space"));
        Assert.Contains("Orleans:Name", bad.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_root, "fresh", SiloNameFile.FileName)));
    }
}
