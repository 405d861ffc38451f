using Orleans.Mqtt.Grains;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

/// <summary>References made by <see cref="GrainRefs{TGrain}"/> reach the same grains as the grain factory's own.</summary>
public sealed class GrainRefsTests(MqttClusterFixture fixture) : IClassFixture<MqttClusterFixture>
{
    [Fact]
    public void A_reference_has_the_grain_id_and_interface_of_the_factory_reference()
    {
        var refs = new GrainRefs<IClientSessionGrain>(fixture.Client);
        var clientId = "refs-" + Guid.NewGuid().ToString("N")[..10];

        var ours = (GrainReference)(object)refs.Get(clientId);
        var theirs = (GrainReference)(object)fixture.Client.GetGrain<IClientSessionGrain>(clientId);

        Assert.Equal(theirs.GrainId, ours.GrainId);
        Assert.Equal(theirs.InterfaceType, ours.InterfaceType);
        Assert.NotEqual(theirs.GrainId, ((GrainReference)(object)refs.Get(clientId + "x")).GrainId);
    }

    [Fact]
    public async Task A_call_through_it_reaches_the_activation_the_factory_reference_reaches()
    {
        var refs = new GrainRefs<IClientSessionGrain>(fixture.Client);
        var clientId = "refs-" + Guid.NewGuid().ToString("N")[..10];
        var gateway = fixture.CreateGateway();
        var presence = gateway.NewConnection();

        await refs.Get(clientId).Connect(new ConnectRequest(presence, true, 0, null, 5, 0));

        // The session only accepts a SUBSCRIBE from the connection it knows: granted means the same activation.
        var result = await fixture.Client.GetGrain<IClientSessionGrain>(clientId).Subscribe(presence.ConnectionId, [new Subscription("refs/+", 1)]);
        Assert.Equal([(byte)1], result.GrantedQos);
        GC.KeepAlive(gateway);
    }
}
