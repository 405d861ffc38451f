using MQTTnet.Protocol;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

// Authorization: the ACL file's rules (and the rules a connection's credentials carry) on every path: the will at
// CONNECT, each PUBLISH, each SUBSCRIBE filter, and each message delivered (see AccessControl and ClientAccess).
internal sealed partial class MqttConnection
{
    private static readonly KeyValuePair<string, object?> DeniedPublish = new("action", "publish");
    private static readonly KeyValuePair<string, object?> DeniedSubscribe = new("action", "subscribe");
    private static readonly KeyValuePair<string, object?> DeniedWill = new("action", "will");

    // Null when nothing is checked: no ACL file and no rules from the connection's credentials.
    private ClientAccess? _access;

    /// <summary>
    /// Fixes the connection's access at CONNECT from its verified identity (<paramref name="userName"/> is the name an
    /// identity source checked: a certificate, a token or the users file, never one the client merely claimed; the
    /// token's rules come as <paramref name="connectionRules"/>); a will to a topic the client may not write is dropped
    /// (counted and logged), so it is never published, while the client still connects as mosquitto lets it.
    /// </summary>
    private void AuthorizeConnect(string clientId, string? userName, IReadOnlyList<AccessRule>? connectionRules, ref MqttMessage? will)
    {
        _access = _gateway.Access.ForConnection(clientId, userName, connectionRules);
        if (_access is null)
        {
            return;
        }

        if (_access.HasUnsafeIdentity)
        {
            LogUnsafeIdentity(_logger, clientId, userName);
        }

        if (will is not null && !_access.MayWrite(will.Topic))
        {
            _gateway.Metrics.AclDenied.Add(1, DeniedWill);
            LogWillDenied(_logger, clientId, will.Topic);
            will = null;
        }
    }

    /// <summary>
    /// Whether a PUBLISH to <paramref name="topic"/> may go on. A refused one gets PUBACK/PUBREC 0x87 in MQTT 5 (QoS 0:
    /// dropped); in MQTT 3.1.1 it is acknowledged and dropped, or the connection is closed (<c>Mqtt:Acl:DenyAction</c>).
    /// </summary>
    private bool AuthorizePublish(string topic, byte qos, ushort packetId)
    {
        if (_access is null || _access.MayWrite(topic))
        {
            return true;
        }

        _gateway.Metrics.AclDenied.Add(1, DeniedPublish);
        if (ShouldLogBadInput())
        {
            LogPublishDenied(_logger, _clientId, topic);
        }

        if (!_v5 && _gateway.Options.Acl.DenyAction == AclDenyAction.Disconnect)
        {
            CloseByServer(CloseReason.NotAuthorized);
            return false;
        }

        if (qos == 1)
        {
            Send(ReplyPackets.PubAck(packetId, MqttPubAckReasonCode.NotAuthorized));
        }
        else if (qos == 2)
        {
            // Nothing was stored for the packet id: the PUBREL that follows is answered with PUBCOMP all the same.
            Send(ReplyPackets.PubRec(packetId, MqttPubRecReasonCode.NotAuthorized));
        }

        return false;
    }

    /// <summary>Whether a SUBSCRIBE filter may be accepted: refused when the client may read no topic it matches.</summary>
    private bool AuthorizeSubscribe(string filter)
    {
        if (_access is null || _access.CheckSubscribe(filter) != SubscribeAccess.Denied)
        {
            return true;
        }

        _gateway.Metrics.AclDenied.Add(1, DeniedSubscribe);
        if (ShouldLogBadInput())
        {
            LogSubscribeDenied(_logger, _clientId, filter);
        }

        return false;
    }

    /// <summary>
    /// Whether a delivery may be written: a subscription wider than the client's read rules (or a retained message, or
    /// a subscription made before the rules changed) brings topics it may not read, and those are withheld.
    /// </summary>
    private bool MayDeliver(Delivery d) => _access is null || _access.MayRead(d.Message.Topic);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId}: PUBLISH to '{Topic}' not authorized")]
    private static partial void LogPublishDenied(ILogger logger, string? clientId, string topic);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId}: SUBSCRIBE to '{Filter}' not authorized")]
    private static partial void LogSubscribeDenied(ILogger logger, string? clientId, string filter);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId}: will to '{Topic}' not authorized; it will not be published")]
    private static partial void LogWillDenied(ILogger logger, string clientId, string topic);

    [LoggerMessage(Level = LogLevel.Information, Message = "Client {ClientId} (user {UserName}): an id or user name with '/', '+' or '#' gets nothing from %c/%u rules")]
    private static partial void LogUnsafeIdentity(ILogger logger, string clientId, string? userName);
}
