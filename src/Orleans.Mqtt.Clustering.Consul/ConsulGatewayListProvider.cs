using Microsoft.Extensions.Options;
using Orleans.Configuration;

namespace Orleans.Mqtt.Clustering.Consul;

/// <summary>The client side: the gateways are the active silos of the Consul membership table that have a proxy port.</summary>
internal sealed class ConsulGatewayListProvider(ConsulMembershipTable table, IOptions<GatewayOptions> gatewayOptions)
    : MembershipGatewayListProvider(table, gatewayOptions);
