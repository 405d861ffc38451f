using System.Collections.Concurrent;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// One observer reference and one id string per gateway, shared by the presences of all its connections. A presence
/// arrives deserialized with every CONNECT and every replicated route change, each with its own copy of both (the
/// observer's proxy with its key and copier, and the id: about 120 bytes), and the route table keeps one presence per
/// connected client for as long as it is connected, whether its session is in memory or not.
/// </summary>
internal sealed class GatewayPresences
{
    private readonly ConcurrentDictionary<string, GatewayPresence> _byGateway = new(StringComparer.Ordinal);

    /// <summary>
    /// <paramref name="presence"/> with the shared observer reference and id of its gateway: itself when it already
    /// has them, when it is the first of its gateway, or when it names a newer observer under the same id (which then
    /// becomes the shared one); otherwise an equal presence (same gateway, connection and lease) that shares them.
    /// </summary>
    public GatewayPresence Intern(GatewayPresence presence)
    {
        if (presence.Gateway is null)
        {
            return presence;
        }

        var shared = _byGateway.GetOrAdd(presence.GatewayId, presence);
        if (ReferenceEquals(shared.Gateway, presence.Gateway) && ReferenceEquals(shared.GatewayId, presence.GatewayId))
        {
            return presence;
        }

        if (!shared.Gateway.Equals(presence.Gateway))
        {
            _byGateway[presence.GatewayId] = presence;
            return presence;
        }

        return presence with { Gateway = shared.Gateway, GatewayId = shared.GatewayId };
    }

    /// <summary>Makes <paramref name="presence"/> its gateway's shared one unless the gateway has one.</summary>
    public void Keep(GatewayPresence presence)
    {
        if (presence.Gateway is not null)
        {
            _byGateway.TryAdd(presence.GatewayId, presence);
        }
    }

    /// <summary>Forgets a gateway whose last connection left the table.</summary>
    public void Forget(string gatewayId) => _byGateway.TryRemove(gatewayId, out _);

    /// <summary>Gateways held (for tests).</summary>
    public int Count => _byGateway.Count;
}
