using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Grains;

// SUBSCRIBE and UNSUBSCRIBE, and the retained messages a new subscription is served.
internal sealed partial class ClientSessionGrain
{
    public Task<SubscribeResult> Subscribe(long connectionId, Subscription[] subscriptions, int maxSubscriptions = 0, CancellationToken cancellationToken = default)
    {
        if (_presence?.ConnectionId != connectionId)
        {
            var failed = new byte[subscriptions.Length];
            Array.Fill(failed, SubscribeReasonCodes.Failure);
            return Task.FromResult(new SubscribeResult(failed, []));
        }

        return SubscribeAsync(connectionId, subscriptions, maxSubscriptions);
    }

    public Task<bool[]> Unsubscribe(long connectionId, string[] filters, CancellationToken cancellationToken = default) =>
        _presence?.ConnectionId != connectionId ? Task.FromResult(new bool[filters.Length]) : UnsubscribeAsync(filters);

    // The connection's check is done; connectionId addresses the retained QoS 0 copies (0 when the client is offline).
    private async Task<SubscribeResult> SubscribeAsync(long connectionId, Subscription[] subscriptions, int maxSubscriptions)
    {
        var granted = new byte[subscriptions.Length];
        var isNew = new bool[subscriptions.Length];
        var changed = false;
        for (var i = 0; i < subscriptions.Length; i++)
        {
            var sub = subscriptions[i];
            isNew[i] = !S.Subscriptions.ContainsKey(sub.Filter);
            if (isNew[i] && maxSubscriptions > 0 && S.Subscriptions.Count >= maxSubscriptions)
            {
                // Checked here, where the subscriptions of earlier connections are known too; a replaced one adds none.
                granted[i] = SubscribeReasonCodes.QuotaExceeded;
                isNew[i] = false;
                continue;
            }

            S.Subscriptions[sub.Filter] = sub;
            granted[i] = sub.Qos;
            changed = true;
        }

        if (!changed)
        {
            return new SubscribeResult(granted, []);
        }

        S.RouteVersion = NextVersion(S.RouteVersion);

        // SUBACK is sent when this returns: the subscription must be stored and routable on every live silo by then.
        await SaveAndReplicateAsync();

        var deliveries = new List<Delivery>();
        var retained = new List<MqttMessage>();
        var queued = false;
        for (var i = 0; i < subscriptions.Length; i++)
        {
            var sub = subscriptions[i];
            // Retained messages are not sent for a shared subscription (MQTT 5 section 4.8.2); retain handling otherwise.
            if (granted[i] == SubscribeReasonCodes.QuotaExceeded
                || sub.RetainHandling == 2 || (sub.RetainHandling == 1 && !isNew[i]) || Topics.SharedSubscription.IsShared(sub.Filter))
            {
                continue;
            }

            retained.Clear();
            routeTable.MatchRetained(sub.Filter, retained);
            var ids = sub.SubscriptionId == 0 ? null : new[] { sub.SubscriptionId };
            foreach (var message in retained)
            {
                var qos = Math.Min(message.Qos, sub.Qos);
                if (qos == 0)
                {
                    deliveries.Add(new Delivery(connectionId, message, 0, true, SubscriptionIds: ids));
                }
                else
                {
                    queued |= Enqueue(new SessionDelivery(message, (byte)qos, true, ids));
                }
            }
        }

        if (queued)
        {
            Pump(deliveries);
            await SaveAsync();
        }

        return new SubscribeResult(granted, [.. deliveries]);
    }

    private async Task<bool[]> UnsubscribeAsync(string[] filters)
    {
        var existed = new bool[filters.Length];
        for (var i = 0; i < filters.Length; i++)
        {
            existed[i] = S.Subscriptions.Remove(filters[i]);
        }

        S.RouteVersion = NextVersion(S.RouteVersion);
        await SaveAndReplicateAsync();
        return existed;
    }
}
