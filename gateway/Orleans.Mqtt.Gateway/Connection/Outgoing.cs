using MQTTnet.Packets;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// One item of a connection's outbox: a packet the gateway made, or a delivery a silo pushed (encoded by the drain).
/// <paramref name="Terminal"/> closes the output once it is written.
/// </summary>
/// <param name="Packet">A packet to write, or null.</param>
/// <param name="Delivery">A delivery to write, or null.</param>
/// <param name="Terminal">Whether the output ends after this item.</param>
internal readonly record struct Outgoing(MqttPacket? Packet, Delivery? Delivery, bool Terminal = false);
