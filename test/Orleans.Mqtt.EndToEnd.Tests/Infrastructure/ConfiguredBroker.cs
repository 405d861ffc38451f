namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>One standalone broker process for a test class, started with the settings the derived fixture gives.</summary>
public abstract class ConfiguredBroker(Dictionary<string, string> settings) : IAsyncLifetime
{
    public BrokerProcess Broker { get; private set; } = null!;

    public async Task InitializeAsync() => Broker = await BrokerProcess.StartAsync(settings);

    public async Task DisposeAsync() => await Broker.DisposeAsync();
}
