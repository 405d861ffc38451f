using System.Text;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Builds every packet the gateway sends in answer to a client: CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK,
/// UNSUBACK and DISCONNECT. What differs between MQTT 3.1.1 and 5 (reason codes, reason strings, properties) is decided
/// here; the formatter of the connection's version then writes only what that version has.
/// </summary>
internal static class ReplyPackets
{
    // Fixed header, flags or reason code, and property framing of a CONNACK or DISCONNECT around a reason string.
    private const int ReasonStringOverhead = 16;

    /// <summary>The CONNACK accepting a CONNECT, with the limits this gateway advertises.</summary>
    public static MqttConnAckPacket ConnAck(bool sessionPresent, string? assignedClientId, MqttGatewayOptions options, ushort serverKeepAlive) => new()
    {
        ReturnCode = MqttConnectReturnCode.ConnectionAccepted,
        ReasonCode = MqttConnectReasonCode.Success,
        IsSessionPresent = sessionPresent,
        AssignedClientIdentifier = assignedClientId,
        // Maximum QoS 2 and the "available" flags set to true are written as absent, which is what they mean.
        MaximumQoS = MqttQualityOfServiceLevel.ExactlyOnce,
        RetainAvailable = true,
        WildcardSubscriptionAvailable = true,
        SubscriptionIdentifiersAvailable = true,
        SharedSubscriptionAvailable = true,
        MaximumPacketSize = (uint)options.MaxPacketSize,
        ReceiveMaximum = (ushort)options.ReceiveMaximum,
        TopicAliasMaximum = (ushort)options.TopicAliasMaximum,
        ServerKeepAlive = serverKeepAlive,
    };

    /// <summary>
    /// The CONNACK refusing a CONNECT for <paramref name="reason"/>: the 3.1.1 return code and the MQTT 5 reason code,
    /// with <paramref name="detail"/> as the MQTT 5 reason string when it fits the client's Maximum Packet Size.
    /// </summary>
    public static MqttConnAckPacket ConnAckRefused(CloseReason reason, bool v5, uint clientMaxPacketSize, string detail)
    {
        var connAck = new MqttConnAckPacket
        {
            ReturnCode = (MqttConnectReturnCode)reason.ConnectReturnCode(),
            ReasonCode = (MqttConnectReasonCode)reason.ConnectReasonCode(),
        };

        if (v5 && Fits(detail, clientMaxPacketSize))
        {
            connAck.ReasonString = detail;
        }

        return connAck;
    }

    /// <summary>PUBACK with <paramref name="reasonCode"/> (MQTT 3.1.1 writes none).</summary>
    public static MqttPubAckPacket PubAck(ushort packetId, MqttPubAckReasonCode reasonCode = MqttPubAckReasonCode.Success) =>
        new() { PacketIdentifier = packetId, ReasonCode = reasonCode };

    /// <summary>
    /// PUBACK for a QoS 1 publish that was routed to <paramref name="sessions"/> sessions; MQTT 5 says when none matched.
    /// </summary>
    public static MqttPubAckPacket PubAckRouted(ushort packetId, int sessions, bool v5) =>
        PubAck(packetId, sessions == 0 && v5 ? MqttPubAckReasonCode.NoMatchingSubscribers : MqttPubAckReasonCode.Success);

    /// <summary>PUBREC with <paramref name="reasonCode"/> (MQTT 3.1.1 writes none).</summary>
    public static MqttPubRecPacket PubRec(ushort packetId, MqttPubRecReasonCode reasonCode = MqttPubRecReasonCode.Success) =>
        new() { PacketIdentifier = packetId, ReasonCode = reasonCode };

    /// <summary>PUBREL, the second step of an outbound QoS 2 exchange.</summary>
    public static MqttPubRelPacket PubRel(ushort packetId) => new() { PacketIdentifier = packetId };

    /// <summary>PUBCOMP, the end of an inbound QoS 2 exchange.</summary>
    public static MqttPubCompPacket PubComp(ushort packetId) => new() { PacketIdentifier = packetId };

    /// <summary>SUBACK with one reason code (3.1.1: granted QoS or failure) per topic filter, in order.</summary>
    public static MqttSubAckPacket SubAck(ushort packetId, MqttSubscribeReasonCode[] codes) =>
        new() { PacketIdentifier = packetId, ReasonCodes = [.. codes] };

    /// <summary>UNSUBACK with one reason code per topic filter, in order (MQTT 3.1.1 writes none).</summary>
    public static MqttUnsubAckPacket UnsubAck(ushort packetId, MqttUnsubscribeReasonCode[] codes) =>
        new() { PacketIdentifier = packetId, ReasonCodes = [.. codes] };

    /// <summary>
    /// The MQTT 5 DISCONNECT closing a connection for <paramref name="reason"/>; its reason string is the reason's
    /// tag unless it could take the packet over the client's Maximum Packet Size.
    /// </summary>
    public static MqttDisconnectPacket Disconnect(CloseReason reason, byte reasonCode, uint clientMaxPacketSize)
    {
        var disconnect = new MqttDisconnectPacket { ReasonCode = (MqttDisconnectReasonCode)reasonCode };
        var reasonString = reason.Tag();
        if (Fits(reasonString, clientMaxPacketSize))
        {
            disconnect.ReasonString = reasonString;
        }

        return disconnect;
    }

    // [MQTT-3.2.2-19], [MQTT-3.14.2-1]: a reason string is left out when it could take the packet over the client's
    // Maximum Packet Size (0: the client set none).
    private static bool Fits(string reasonString, uint clientMaxPacketSize) =>
        clientMaxPacketSize == 0 || Encoding.UTF8.GetByteCount(reasonString) + ReasonStringOverhead <= clientMaxPacketSize;
}
