using MQTTnet.Formatter;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// A refused packet: why (a row of the close-reason table: malformed packet, invalid UTF-8, protocol error, packet
/// identifier 0, unsupported protocol version), a short text for the log, and for CONNECT the protocol version the
/// packet asked for (so a v5 client gets a CONNACK with the reason code and a v3.1.1 client just a closed connection).
/// </summary>
internal readonly record struct MqttPacketRefusal(CloseReason Reason, string Detail, MqttProtocolVersion ConnectVersion = MqttProtocolVersion.Unknown);
