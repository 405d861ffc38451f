using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Ownership.Etcd;

namespace Orleans.Mqtt.Ownership.Tests;

/// <summary>An etcd ownership store built the way a host builds it, through <c>AddEtcdSessionOwnership</c>.</summary>
internal sealed class EtcdOwnership : IAsyncDisposable
{
    private readonly ServiceProvider _services;

    private EtcdOwnership(ServiceProvider services)
    {
        _services = services;
        Store = (EtcdSessionOwnershipStore)services.GetRequiredService<ISessionOwnershipStore>();
    }

    public EtcdSessionOwnershipStore Store { get; }

    public IServiceProvider Services => _services;

    public static EtcdOwnership Create(string etcdUrl, Action<EtcdOwnershipOptions>? configure = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddEtcdSessionOwnership(options =>
        {
            options.ConnectionString = etcdUrl;
            options.ClusterId = "test";
            configure?.Invoke(options);
        });
        var provider = services.BuildServiceProvider();

        // What ValidateOnStart does in a host.
        _ = provider.GetRequiredService<IOptions<EtcdOwnershipOptions>>().Value;
        return new EtcdOwnership(provider);
    }

    public static EtcdGatewayLease Lease(string etcdUrl, TimeSpan ttl) =>
        new(Options.Create(new EtcdOwnershipOptions { ConnectionString = etcdUrl, ClusterId = "test", LeaseTtl = ttl, RequestTimeout = TimeSpan.FromSeconds(2) }),
            NullLogger<EtcdGatewayLease>.Instance);

    public ValueTask DisposeAsync() => _services.DisposeAsync();
}
