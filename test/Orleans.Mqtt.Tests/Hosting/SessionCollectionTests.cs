using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Mqtt.Grains;
using Xunit;

namespace Orleans.Mqtt.Tests.Hosting;

public sealed class SessionCollectionTests
{
    [Fact]
    public void By_default_an_idle_session_is_collected_after_10_s_by_a_collector_that_looks_every_5_s()
    {
        var collection = CollectionOptions(new Dictionary<string, string?>());

        Assert.Equal(TimeSpan.FromSeconds(10), collection.ClassSpecificCollectionAge[typeof(ClientSessionGrain).FullName!]);
        Assert.Equal(TimeSpan.FromSeconds(5), collection.CollectionQuantum);
    }

    [Fact]
    public void A_configured_idle_timeout_is_the_session_grains_collection_age()
    {
        var collection = CollectionOptions(new() { ["Mqtt:SessionIdleTimeout"] = "00:05:00" });

        Assert.Equal(TimeSpan.FromMinutes(5), collection.ClassSpecificCollectionAge[typeof(ClientSessionGrain).FullName!]);
        Assert.True(collection.CollectionQuantum <= TimeSpan.FromMinutes(2.5));
    }

    private static GrainCollectionOptions CollectionOptions(Dictionary<string, string?> settings)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        new Silo(services).AddMqttGrains();
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<GrainCollectionOptions>>().Value;
    }

    private sealed class Silo(IServiceCollection services) : ISiloBuilder
    {
        public IServiceCollection Services => services;

        public IConfiguration Configuration { get; } = new ConfigurationBuilder().Build();
    }
}
