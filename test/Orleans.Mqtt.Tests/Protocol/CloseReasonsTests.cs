using MQTTnet.Protocol;
using Orleans.Mqtt.Protocol;
using Xunit;

namespace Orleans.Mqtt.Tests.Protocol;

public sealed class CloseReasonsTests
{
    // The metric tag values dashboards and the end-to-end tests read: they must not change with the enum.
    [Theory]
    [InlineData(CloseReason.ProtocolError, "protocol_error")]
    [InlineData(CloseReason.MalformedPacket, "malformed_packet")]
    [InlineData(CloseReason.InvalidUtf8, "invalid_utf8")]
    [InlineData(CloseReason.PacketIdentifierZero, "packet_id_zero")]
    [InlineData(CloseReason.PacketTooLarge, "packet_too_large")]
    [InlineData(CloseReason.InvalidTopic, "invalid_topic")]
    [InlineData(CloseReason.ReceiveMaximumExceeded, "receive_maximum_exceeded")]
    [InlineData(CloseReason.TopicAliasInvalid, "topic_alias_invalid")]
    [InlineData(CloseReason.PayloadFormatInvalid, "payload_format_invalid")]
    [InlineData(CloseReason.ConnectTimeout, "connect_timeout")]
    [InlineData(CloseReason.KeepAliveTimeout, "keep_alive_timeout")]
    [InlineData(CloseReason.PublishFailed, "publish_failed")]
    [InlineData(CloseReason.SessionTakenOver, "session_taken_over")]
    [InlineData(CloseReason.ServerShuttingDown, "server_shutting_down")]
    [InlineData(CloseReason.GatewayDeclaredDead, "gateway_declared_dead")]
    [InlineData(CloseReason.UnsupportedProtocolVersion, "unsupported_protocol_version")]
    [InlineData(CloseReason.ClientIdRejected, "client_id_rejected")]
    [InlineData(CloseReason.BadAuthenticationMethod, "bad_authentication_method")]
    [InlineData(CloseReason.BadCredentials, "bad_credentials")]
    [InlineData(CloseReason.NotAuthorized, "not_authorized")]
    [InlineData(CloseReason.MaxConnections, "max_connections")]
    [InlineData(CloseReason.SessionUnavailable, "session_unavailable")]
    [InlineData(CloseReason.SessionConnectTimeout, "session_connect_timeout")]
    [InlineData(CloseReason.ConnectionRateExceeded, "connection_rate_exceeded")]
    [InlineData(CloseReason.ServerBusy, "server_busy")]
    [InlineData(CloseReason.TopicTooLong, "topic_too_long")]
    [InlineData(CloseReason.TopicTooManyLevels, "topic_too_many_levels")]
    [InlineData(CloseReason.WebSocketTextFrame, "websocket_text_frame")]
    [InlineData(CloseReason.WebSocketFrameError, "websocket_frame_error")]
    [InlineData(CloseReason.SessionFailedOver, "session_failed_over")]
    [InlineData(CloseReason.SessionUnresponsive, "session_unresponsive")]
    [InlineData(CloseReason.FileLimit, "file_limit")]
    public void Close_reason_tags_stay_as_published(CloseReason reason, string tag)
    {
        Assert.Equal(tag, reason.Tag());
        Assert.Equal(new KeyValuePair<string, object?>("reason", tag), reason.MetricTag());
        Assert.False(string.IsNullOrEmpty(reason.LogText()));
    }

    [Fact]
    public void Every_close_reason_is_in_the_table()
    {
        foreach (var reason in Enum.GetValues<CloseReason>())
        {
            Assert.False(string.IsNullOrEmpty(reason.Tag()));
        }
    }

    [Theory]
    [InlineData(CloseReason.UnsupportedProtocolVersion, MqttConnectReturnCode.ConnectionRefusedUnacceptableProtocolVersion, MqttConnectReasonCode.UnsupportedProtocolVersion)]
    [InlineData(CloseReason.MalformedPacket, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.MalformedPacket)]
    [InlineData(CloseReason.InvalidUtf8, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.MalformedPacket)]
    [InlineData(CloseReason.ProtocolError, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.ProtocolError)]
    [InlineData(CloseReason.PacketIdentifierZero, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.ProtocolError)]
    [InlineData(CloseReason.ClientIdRejected, MqttConnectReturnCode.ConnectionRefusedIdentifierRejected, MqttConnectReasonCode.ClientIdentifierNotValid)]
    [InlineData(CloseReason.ServerShuttingDown, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.ServerUnavailable)]
    [InlineData(CloseReason.BadAuthenticationMethod, MqttConnectReturnCode.ConnectionRefusedNotAuthorized, MqttConnectReasonCode.BadAuthenticationMethod)]
    [InlineData(CloseReason.BadCredentials, MqttConnectReturnCode.ConnectionRefusedBadUsernameOrPassword, MqttConnectReasonCode.BadUserNameOrPassword)]
    [InlineData(CloseReason.NotAuthorized, MqttConnectReturnCode.ConnectionRefusedNotAuthorized, MqttConnectReasonCode.NotAuthorized)]
    [InlineData(CloseReason.InvalidTopic, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.TopicNameInvalid)]
    [InlineData(CloseReason.MaxConnections, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.QuotaExceeded)]
    [InlineData(CloseReason.SessionUnavailable, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.ServerUnavailable)]
    [InlineData(CloseReason.SessionConnectTimeout, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.ServerUnavailable)]
    [InlineData(CloseReason.ConnectionRateExceeded, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.ConnectionRateExceeded)]
    [InlineData(CloseReason.ServerBusy, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.ServerBusy)]
    [InlineData(CloseReason.TopicTooLong, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.TopicNameInvalid)]
    [InlineData(CloseReason.TopicTooManyLevels, MqttConnectReturnCode.ConnectionRefusedServerUnavailable, MqttConnectReasonCode.TopicNameInvalid)]
    public void Connect_refusals_carry_the_codes_of_both_versions(CloseReason reason, MqttConnectReturnCode v311, MqttConnectReasonCode v5)
    {
        Assert.Equal(v311, (MqttConnectReturnCode)reason.ConnectReturnCode());
        Assert.Equal(v5, (MqttConnectReasonCode)reason.ConnectReasonCode());
    }

    [Theory]
    [InlineData(CloseReason.ProtocolError, MqttDisconnectReasonCode.ProtocolError)]
    [InlineData(CloseReason.MalformedPacket, MqttDisconnectReasonCode.MalformedPacket)]
    [InlineData(CloseReason.InvalidUtf8, MqttDisconnectReasonCode.MalformedPacket)]
    [InlineData(CloseReason.PacketIdentifierZero, MqttDisconnectReasonCode.ProtocolError)]
    [InlineData(CloseReason.PacketTooLarge, MqttDisconnectReasonCode.PacketTooLarge)]
    [InlineData(CloseReason.InvalidTopic, MqttDisconnectReasonCode.TopicNameInvalid)]
    [InlineData(CloseReason.ReceiveMaximumExceeded, MqttDisconnectReasonCode.ReceiveMaximumExceeded)]
    [InlineData(CloseReason.TopicAliasInvalid, MqttDisconnectReasonCode.TopicAliasInvalid)]
    [InlineData(CloseReason.PayloadFormatInvalid, MqttDisconnectReasonCode.PayloadFormatInvalid)]
    [InlineData(CloseReason.KeepAliveTimeout, MqttDisconnectReasonCode.KeepAliveTimeout)]
    [InlineData(CloseReason.PublishFailed, MqttDisconnectReasonCode.UnspecifiedError)]
    [InlineData(CloseReason.SessionUnresponsive, MqttDisconnectReasonCode.UnspecifiedError)]
    [InlineData(CloseReason.SessionTakenOver, MqttDisconnectReasonCode.SessionTakenOver)]
    [InlineData(CloseReason.ServerShuttingDown, MqttDisconnectReasonCode.ServerShuttingDown)]
    [InlineData(CloseReason.GatewayDeclaredDead, MqttDisconnectReasonCode.UnspecifiedError)]
    [InlineData(CloseReason.ServerBusy, MqttDisconnectReasonCode.ServerBusy)]
    [InlineData(CloseReason.TopicTooLong, MqttDisconnectReasonCode.TopicNameInvalid)]
    [InlineData(CloseReason.TopicTooManyLevels, MqttDisconnectReasonCode.TopicNameInvalid)]
    public void Disconnects_carry_the_mqtt5_reason_code(CloseReason reason, MqttDisconnectReasonCode code)
    {
        Assert.Equal(code, (MqttDisconnectReasonCode)reason.DisconnectReasonCode());
    }

    [Theory]
    [InlineData(DropReason.SlowConsumer, "slow_consumer")]
    [InlineData(DropReason.ConnectionGone, "connection_gone")]
    [InlineData(DropReason.PublishFailed, "publish_failed")]
    [InlineData(DropReason.Expired, "expired")]
    [InlineData(DropReason.PacketTooLargeForClient, "packet_too_large_for_client")]
    [InlineData(DropReason.GatewayDead, "gateway_dead")]
    [InlineData(DropReason.GatewayBacklog, "gateway_backlog")]
    [InlineData(DropReason.GatewayUnreachable, "gateway_unreachable")]
    [InlineData(DropReason.NoSession, "no_session")]
    [InlineData(DropReason.QueueFull, "queue_full")]
    [InlineData(DropReason.OfflineQos0, "offline_qos0")]
    [InlineData(DropReason.NoShareMember, "no_share_member")]
    [InlineData(DropReason.RateLimited, "rate_limited")]
    [InlineData(DropReason.Overloaded, "overloaded")]
    [InlineData(DropReason.NotAuthorized, "not_authorized")]
    [InlineData(DropReason.SiloStopping, "silo_stopping")]
    public void Drop_reason_tags_stay_as_published(DropReason reason, string tag)
    {
        Assert.Equal(tag, reason.Tag());
        Assert.Equal(new KeyValuePair<string, object?>("reason", tag), reason.MetricTag());
    }

    [Fact]
    public void Every_drop_reason_has_a_tag()
    {
        foreach (var reason in Enum.GetValues<DropReason>())
        {
            Assert.False(string.IsNullOrEmpty(reason.Tag()));
        }
    }
}
