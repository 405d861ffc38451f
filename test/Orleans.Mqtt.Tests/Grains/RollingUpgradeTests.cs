using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Reflection;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.CodeGeneration;
using Orleans.Metadata;
using Orleans.Mqtt.Grains;
using Orleans.Serialization.Invocation;
using Orleans.Serialization.TypeSystem;
using Orleans.TestingHost;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// A two-silo cluster whose silos take each other for silos of the last release: their <see cref="SiloManifests"/>
/// sees no manifest, so no silo is known to serve a grain interface added since.
/// </summary>
public sealed class LastReleasePeersFixture : IAsyncLifetime
{
    /// <summary>The topic shards.</summary>
    public const int Shards = 8;

    // Orleans holds observers weakly: a gateway the test no longer references could be collected.
    private readonly List<RecordingGateway> _gateways = [];

    /// <summary>The cluster.</summary>
    public InProcessTestCluster Cluster { get; private set; } = null!;

    /// <summary>Session copy calls that carried routes, by method name and client id.</summary>
    public ConcurrentDictionary<(string Method, string ClientId), int> CopyCallsWithRoutes { get; } = new();

    /// <inheritdoc/>
    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddIncomingGrainCallFilter(CountCopyCalls);
            silo.AddMemoryGrainStorage(MqttGrainStorage.Name);
            silo.AddMqttGrains(o =>
            {
                RouteShardingFromEnvironment.Apply(o);
                o.TopicShards = Shards;
            });
            silo.Services.AddSingleton(new SiloManifests(new NoManifests()));
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    /// <inheritdoc/>
    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }

    /// <summary>A gateway that records what the silos push to it.</summary>
    public RecordingGateway CreateGateway()
    {
        var gateway = new RecordingGateway(Cluster.Client);
        _gateways.Add(gateway);
        return gateway;
    }

    private Task CountCopyCalls(IIncomingGrainCallContext call)
    {
        if (call.Grain is ISessionCopyGrain && call.Request.GetArgumentCount() >= 2 && call.Request.GetArgument(1) is ClientRoutes[] riding)
        {
            foreach (var routes in riding)
            {
                CopyCallsWithRoutes.AddOrUpdate((call.Request.GetMethodName(), routes.ClientId), 1, static (_, n) => n + 1);
            }
        }

        return call.Invoke();
    }

    // A cluster manifest that lists no silo, as before any silo's manifest has arrived.
    private sealed class NoManifests : IClusterManifestProvider
    {
        public ClusterManifest Current { get; } = new(MajorMinorVersion.Zero, ImmutableDictionary<SiloAddress, GrainManifest>.Empty);

        public IAsyncEnumerable<ClusterManifest> Updates => None();

        public GrainManifest LocalGrainManifest => throw new NotSupportedException();

        private static async IAsyncEnumerable<ClusterManifest> None()
        {
            await Task.CompletedTask;
            yield break;
        }
    }
}

/// <summary>
/// Rolling upgrades (docs/architecture.md, "Rolling upgrades"): while silos and gateways are upgraded one at a time,
/// those of the last release and of this one call each other's grains. Orleans names a grain call on the wire by its
/// interface and a method id (the method's <c>[Alias]</c>, otherwise a hash of its name and parameter types), so every
/// method of the last release (ReleasedGrainMethods.txt) must still be served under its id, a released interface must
/// be called only with ids the last release knows, and a call added since goes only to a silo whose manifest lists
/// its interface.
/// </summary>
public sealed class RollingUpgradeTests(LastReleasePeersFixture fixture) : IClassFixture<LastReleasePeersFixture>
{
    private static string NewId(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..10];

    [Fact]
    public void Every_grain_method_of_the_last_release_is_still_served_under_its_id()
    {
        var converter = Converter();
        var current = InvokableTypes();
        foreach (var released in Released())
        {
            // A current call of the same interface shows how Orleans writes that interface's calls: the released id
            // goes in its place, and the silo must resolve that name to a call of the same method.
            var sameInterface = current.FirstOrDefault(c => c.Interface.FullName == released.Interface).Type;
            Assert.True(sameInterface is not null, $"{released.Interface}, an interface of the last release, is gone or renamed: its calls from silos of that release cannot be served.");
            var wireName = WithId(converter.Format(sameInterface), released.Id);
            Type type;
            try
            {
                type = converter.Parse(wireName);
            }
            catch (Exception ex)
            {
                Assert.Fail($"{released.Interface}.{released.Method} (id {released.Id}), a method of the last release, is not served: {ex.Message}. Keep it, with its name and parameter types unchanged, and add a new method for the new behaviour.");
                return;
            }

            var call = (IInvokable)Activator.CreateInstance(type)!;
            Assert.Equal($"{released.Interface}.{released.Method}", $"{call.GetInterfaceName()}.{call.GetMethodName()}");
        }
    }

    [Fact]
    public void A_released_interface_is_called_only_with_the_ids_of_the_last_release()
    {
        var converter = Converter();
        var released = Released();
        foreach (var (type, iface) in InvokableTypes())
        {
            var ofInterface = released.Where(r => r.Interface == iface.FullName).ToList();

            // A new interface is called only on silos whose manifest lists it. A raised [Version] lets Orleans place a
            // call on a silo that serves it (not possible for a grain pinned to a silo).
            if (ofInterface.Count == 0 || (iface.GetCustomAttribute<VersionAttribute>()?.Version ?? 0) > ofInterface[0].Version)
            {
                continue;
            }

            var id = IdOf(converter.Format(type));
            var method = ((IInvokable)Activator.CreateInstance(type)!).GetMethodName();
            Assert.True(
                ofInterface.Any(r => r.Id == id),
                $"{iface.FullName}.{method} is sent as id {id}, which silos of the last release do not serve: a changed signature or a new [Alias] on a released method. Keep the released method as it was and put the new one on a new interface (see docs/architecture.md, \"Rolling upgrades\").");
        }
    }

    [Fact]
    public async Task The_released_StoreWithRoutes_stores_the_copy_and_applies_the_routes()
    {
        var silo = fixture.Cluster.Silos[1].SiloAddress;
        var clientId = NewId("released");
        var copies = fixture.Cluster.Client.GetGrain<ISessionCopyGrain>(silo.ToParsableString());
        var routes = new ClientRoutes(clientId, 3, [new Subscription(clientId + "/t", 1)], Persistent: true, Presence: null, Home: "elsewhere");

        await copies.StoreWithRoutes([new SessionCopy(clientId, 3, new SessionState { StateVersion = 3 })], [routes]);

        Assert.Equal(3, (await copies.Fetch(clientId))?.Version);
        var held = fixture.Cluster.GetSiloServiceProvider(silo).GetRequiredService<RouteTable>().Get(clientId);
        Assert.Equal(clientId + "/t", Assert.Single(held!.Subscriptions).Filter);
    }

    [Fact]
    public async Task A_copy_holder_of_the_last_release_takes_the_routes_in_the_released_call_and_they_are_routable()
    {
        var gateway = fixture.CreateGateway();
        var clientId = NewId("upgrade");
        var topic = clientId + "/t";
        var session = fixture.Cluster.Client.GetGrain<IClientSessionGrain>(clientId);
        var presence = gateway.NewConnection();
        Assert.False((await session.Connect(new ConnectRequest(presence, false, 3600, null, 5, 0))).SessionPresent);

        await session.Subscribe(presence.ConnectionId, [new Subscription(topic, 1)]);

        // The subscription rode with the session's copy to the other silo, in the call that silo's release serves.
        Assert.True(fixture.CopyCallsWithRoutes.GetValueOrDefault((nameof(ISessionCopyGrain.StoreWithRoutes), clientId)) >= 1);
        Assert.Equal(0, fixture.CopyCallsWithRoutes.GetValueOrDefault((nameof(ISessionCopyGrainV2.StoreWithRoutesAndAsk), clientId)));

        // Nothing was answered about the topic's shard, so its grain was told as the last release tells it.
        var shard = fixture.Cluster.Client.GetGrain<ITopicShardGrain>(Orleans.Mqtt.Topics.MqttTopic.ShardOf(topic, LastReleasePeersFixture.Shards));
        Assert.Equal(1, await shard.Publish(new MqttMessage { Topic = topic, Payload = Encoding.UTF8.GetBytes("routed"), Qos = 1 }));
        Assert.Equal("routed", Encoding.UTF8.GetString((await gateway.NextDeliveryAsync()).Message.Payload.Span));
    }

    private TypeConverter Converter() =>
        fixture.Cluster.GetSiloServiceProvider(fixture.Cluster.Silos[0].SiloAddress).GetRequiredService<TypeConverter>();

    private sealed record ReleasedMethod(string Interface, ushort Version, string Method, string Id);

    private static List<ReleasedMethod> Released() =>
        [.. File.ReadLines(Path.Combine(AppContext.BaseDirectory, "Grains", "ReleasedGrainMethods.txt"))
            .Where(line => line.Length > 0 && !line.StartsWith('#'))
            .Select(line => line.Split('\t'))
            .Select(f => new ReleasedMethod(f[0], ushort.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture), f[2], f[3]))];

    // The generated call types of this build's grain interfaces, each with its interface.
    private static List<(Type Type, Type Interface)> InvokableTypes()
    {
        var result = new List<(Type, Type)>();
        foreach (var assembly in new[] { typeof(ISessionCopyGrain).Assembly, typeof(IClientSessionGrain).Assembly })
        {
            foreach (var type in assembly.GetTypes())
            {
                if (type.GetCustomAttributes<CompoundTypeAliasAttribute>().FirstOrDefault(a => a.Components is ["inv", .., Type, string]) is { } alias)
                {
                    result.Add((type, (Type)alias.Components[^2]));
                }
            }
        }

        return result;
    }

    // The method id is the last component of a call type's name on the wire: ("inv",[proxy],[interface],"id").
    private static string IdOf(string wireName)
    {
        var start = wireName.LastIndexOf(",\"", StringComparison.Ordinal) + 2;
        return wireName[start..wireName.IndexOf('"', start)];
    }

    private static string WithId(string wireName, string id)
    {
        var start = wireName.LastIndexOf(",\"", StringComparison.Ordinal) + 2;
        return wireName[..start] + id + wireName[wireName.IndexOf('"', start)..];
    }
}
