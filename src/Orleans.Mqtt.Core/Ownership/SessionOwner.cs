namespace Orleans.Mqtt.Ownership;

/// <summary>The connection that owns a client id: its gateway, the connection on that gateway and the session epoch.</summary>
/// <param name="GatewayId">The gateway holding the network connection.</param>
/// <param name="ConnectionId">The connection on that gateway.</param>
/// <param name="Epoch">Grows with every new owner of the client id.</param>
/// <param name="LeaseId">The gateway's lease the record hangs on (0: none), so a dead gateway's records expire.</param>
public sealed record SessionOwner(string GatewayId, long ConnectionId, long Epoch, long LeaseId = 0);
