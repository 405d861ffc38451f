namespace Orleans.Mqtt.Grains;

/// <summary>
/// A session a published message matched, with the options merged over all of its matching subscriptions; for a
/// shared subscription, the one member chosen for this message and the subscription's full <c>$share/…</c> filter.
/// </summary>
internal readonly record struct SessionMatch(ClientRoutes Client, byte Qos, bool RetainAsPublished, uint[]? SubscriptionIds, string? ShareKey = null);
