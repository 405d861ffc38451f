using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Grains;

// The admin API's calls: read the session, disconnect its client, change its subscriptions. None creates a session.
internal sealed partial class ClientSessionGrain
{
    public Task<ClientDetails?> Describe()
    {
        if (!Exists())
        {
            return Task.FromResult<ClientDetails?>(null);
        }

        var details = new ClientDetails(
            ClientId,
            _presence is not null,
            _presence?.GatewayId,
            _presence?.ConnectionId,
            S.UserName,
            Persistent,
            S.SessionExpiryInterval,
            S.DisconnectedAtUtc,
            SubscriptionArray(),
            S.Queue.Count,
            S.Inflight.Count,
            S.DroppedMessages,
            localSilo.Name);
        return Task.FromResult<ClientDetails?>(details);
    }

    public async Task<bool> Kick(bool discardSession)
    {
        if (!Exists())
        {
            return false;
        }

        LogKick(logger, ClientId, _presence?.GatewayId, discardSession);
        if (_presence is { } presence)
        {
            // The connection's gateway closes it (MQTT 5: DISCONNECT 0x98 first); the session treats it as lost, so the
            // will goes out. The gateway's own Disconnect call that follows finds the connection already gone here.
            try
            {
                await presence.Gateway.Disconnect(presence.ConnectionId, CloseReason.AdministrativeAction.DisconnectReasonCode());
            }
            catch (Exception ex)
            {
                LogGatewayCallFailed(logger, ex, ClientId, presence.GatewayId);
            }

            if (await Disconnect(presence.ConnectionId, DisconnectKind.ConnectionLost) is { } will)
            {
                PublishWill(will);
            }
        }

        if (discardSession && _hasSession)
        {
            EndSession();
            S.RouteVersion = NextVersion(S.RouteVersion);
            await SaveAndReplicateAsync();
            DeactivateOnIdle();
        }

        return true;
    }

    public async Task<byte[]?> AdminSubscribe(Subscription[] subscriptions)
    {
        if (!Exists())
        {
            return null;
        }

        var result = await SubscribeAsync(_presence?.ConnectionId ?? 0, subscriptions, maxSubscriptions: 0);
        if (result.Retained.Length > 0)
        {
            // A connected client gets the retained messages as after its own SUBSCRIBE; an offline one finds the QoS 1/2
            // copies queued.
            await PushAsync([.. result.Retained]);
        }

        return result.GrantedQos;
    }

    public async Task<bool[]?> AdminUnsubscribe(string[] filters) => Exists() ? await UnsubscribeAsync(filters) : null;

    // A client id without a session: this activation was made only to answer, and holds nothing.
    private bool Exists()
    {
        if (_hasSession || _presence is not null)
        {
            return true;
        }

        DeactivateOnIdle();
        return false;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Client {ClientId} disconnected by the admin API (gateway {GatewayId}; session discarded: {Discard})")]
    private static partial void LogKick(ILogger logger, string clientId, string? gatewayId, bool discard);
}
