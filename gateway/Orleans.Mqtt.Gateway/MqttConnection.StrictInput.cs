using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Orleans.Mqtt.Gateway.Codec;

namespace Orleans.Mqtt.Gateway;

/// <summary>The connection's answer to a packet <see cref="MqttPacketValidator"/> refused.</summary>
internal sealed partial class MqttConnection
{
    /// <summary>
    /// Closes the connection for a refused packet, before anything it carries takes effect: an MQTT 5 CONNECT gets a
    /// CONNACK with the reason code, an MQTT 3.1.1 CONNECT only a closed connection [MQTT-3.1.4-1], a packet after
    /// CONNECT a DISCONNECT with the reason code (MQTT 5) or a closed connection (MQTT 3.1.1).
    /// </summary>
    private void RefuseInvalidPacket(MqttPacketRefusal refusal)
    {
        if (_session is not null)
        {
            Reject(refusal.MetricReason, (byte)refusal.DisconnectReasonCode, refusal.Detail);
            return;
        }

        if (refusal.Kind == MqttRefusalKind.UnsupportedProtocolVersion)
        {
            // [MQTT-3.1.2-2]: answered with the MQTT 3.1.1 return code 0x01, which every client version reads.
            _protocolVersion = MqttProtocolVersion.V311;
            RefuseConnect(refusal.MetricReason, MqttConnectReturnCode.ConnectionRefusedUnacceptableProtocolVersion, refusal.ConnectReasonCode, refusal.Detail);
            return;
        }

        if (refusal.ConnectVersion == MqttProtocolVersion.V500)
        {
            _protocolVersion = MqttProtocolVersion.V500;
            _v5 = true;
            _gateway.Metrics.PacketsRejected.Add(1, new KeyValuePair<string, object?>("reason", refusal.MetricReason));
            RefuseConnect(refusal.MetricReason, MqttConnectReturnCode.ConnectionRefusedUnacceptableProtocolVersion, refusal.ConnectReasonCode, refusal.Detail);
            return;
        }

        Reject(refusal.MetricReason, (byte)refusal.DisconnectReasonCode, refusal.Detail);
    }
}
