using MQTTnet.Formatter;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

// The answer to a packet MqttPacketValidator refused.
internal sealed partial class MqttConnection
{
    /// <summary>
    /// Closes the connection for a refused packet, before anything it carries takes effect: an MQTT 5 CONNECT gets a
    /// CONNACK with the reason code, an MQTT 3.1.1 CONNECT only a closed connection [MQTT-3.1.4-1], a packet after
    /// CONNECT a DISCONNECT with the reason code (MQTT 5) or a closed connection (MQTT 3.1.1). An unsupported protocol
    /// level gets the MQTT 3.1.1 return code 0x01, which every client version reads [MQTT-3.1.2-2].
    /// </summary>
    private void RefuseInvalidPacket(MqttPacketRefusal refusal)
    {
        if (_session is null && refusal.Reason == CloseReason.UnsupportedProtocolVersion)
        {
            _protocolVersion = MqttProtocolVersion.V311;
            RefuseConnect(refusal.Reason, refusal.Detail);
            return;
        }

        if (_session is null && refusal.ConnectVersion == MqttProtocolVersion.V500)
        {
            _protocolVersion = MqttProtocolVersion.V500;
            _v5 = true;
            _gateway.Metrics.PacketsRejected.Add(1, refusal.Reason.MetricTag());
            RefuseConnect(refusal.Reason, refusal.Detail);
            return;
        }

        Reject(refusal.Reason, refusal.Detail);
    }
}
