namespace Orleans.Mqtt.Grains;

/// <summary>The gateways this silo learned are dead, so pushes to them are skipped instead of timing out.</summary>
internal sealed class DeadGateways
{
    private volatile HashSet<string> _dead = new(StringComparer.Ordinal);

    public bool Contains(string gatewayId) => _dead.Contains(gatewayId);

    public void Set(IEnumerable<string> gatewayIds) => _dead = new HashSet<string>(gatewayIds, StringComparer.Ordinal);
}
