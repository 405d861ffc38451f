using MQTTnet.Formatter;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Gateway;

// Log messages of a connection (one logger for every connection, see MqttGateway.ConnectionLogger).
internal sealed partial class MqttConnection
{
    [LoggerMessage(Level = LogLevel.Debug, Message = "Client {ClientId} connected from {Remote} ({Protocol}, session present: {SessionPresent}, will delay interval {WillDelay})")]
    private static partial void LogConnected(ILogger logger, string clientId, System.Net.EndPoint? remote, MqttProtocolVersion protocol, bool sessionPresent, uint willDelay);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Client {ClientId} from {Remote} disconnected ({Kind}, session expiry interval {SessionExpiry})")]
    private static partial void LogDisconnected(ILogger logger, string? clientId, System.Net.EndPoint? remote, DisconnectKind kind, string sessionExpiry);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection from {Remote} refused ({Reason}): {Detail}")]
    private static partial void LogRefused(ILogger logger, string remote, string reason, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId} from {Remote}: bad input ({Reason}): {Detail}")]
    private static partial void LogRejected(ILogger logger, string? clientId, string remote, string reason, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId}: invalid topic filter '{Filter}' refused")]
    private static partial void LogRejectedFilter(ILogger logger, string? clientId, string filter);

    [LoggerMessage(Level = LogLevel.Information, Message = "Client {ClientId} from {Remote} closed by the server ({Reason}: {Text}, reason code 0x{Code:X2}, {State})")]
    private static partial void LogClosedByServer(ILogger logger, string? clientId, string remote, string reason, string text, byte code, string state);

    [LoggerMessage(Level = LogLevel.Error, Message = "Connection of client {ClientId} from {Remote} failed")]
    private static partial void LogConnectionFailed(ILogger logger, Exception ex, string? clientId, string remote);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session of client {ClientId} did not take connection {ConnectionId} within {Timeout} ({Setting}): CONNACK Server unavailable, the client retries")]
    private static partial void LogSessionConnectTimedOut(ILogger logger, string clientId, long connectionId, TimeSpan timeout, string setting);

    [LoggerMessage(Level = LogLevel.Error, Message = "Session call for client {ClientId} failed")]
    private static partial void LogSessionCallFailed(ILogger logger, Exception ex, string clientId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Message to {Topic} (QoS {Qos}) for client {ClientId} from {Remote} not sent: {Reason} ({Suppressed} more not sent since the last such line; one line per 10 s)")]
    private static partial void LogDeliveryDropped(ILogger logger, string? clientId, string remote, string topic, byte qos, string reason, long suppressed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId} from {Remote}: {Count} more messages not sent since the last line (counted in mqtt.messages.dropped)")]
    private static partial void LogDeliveriesDroppedSummary(ILogger logger, string? clientId, string remote, long count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} lines about refused, closed or misbehaving connections held back (over the gateway's budget of {PerSecond} lines a second; the events are counted in mqtt.connections.refused, mqtt.connections.closed and mqtt.packets.rejected)")]
    private static partial void LogConnectionLinesHeldBack(ILogger logger, long count, double perSecond);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Client {ClientId} from {Remote}: {Count} more bad input lines held back since the last one (counted in mqtt.packets.rejected)")]
    private static partial void LogRejectedSummary(ILogger logger, string? clientId, string remote, long count);
}
