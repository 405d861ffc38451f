using Microsoft.Extensions.Options;
using Orleans.Configuration;

namespace Orleans.Mqtt.Clustering.Etcd;

/// <summary>The client side: the gateways are the active silos of the etcd membership table that have a proxy port.</summary>
internal sealed class EtcdGatewayListProvider(EtcdMembershipTable table, IOptions<GatewayOptions> gatewayOptions)
    : MembershipGatewayListProvider(table, gatewayOptions);
