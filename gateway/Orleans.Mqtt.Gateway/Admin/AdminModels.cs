using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Gateway;

/// <summary>A page of clients; <c>Next</c> is the cursor for the next page (pass it as <c>after</c>), null at the end.</summary>
internal sealed record ClientPage(ClientSummary[] Items, string? Next);

/// <summary>Subscriptions to add to a client's session.</summary>
internal sealed record SubscribeRequest(SubscriptionRequest[]? Subscriptions);

/// <summary>One subscription to add, with the MQTT 5 options (defaults as in MQTT 3.1.1).</summary>
internal sealed record SubscriptionRequest(string? Filter, byte Qos = 0, bool NoLocal = false, bool RetainAsPublished = false, byte RetainHandling = 0);

/// <summary>Per requested subscription, the granted QoS or an MQTT 5 SUBACK reason code.</summary>
internal sealed record SubscribeResponse(int[] ReasonCodes);

/// <summary>Per filter named, whether the session had that subscription.</summary>
internal sealed record UnsubscribeResponse(bool[] Removed);

/// <summary>A page of retained messages; <c>Next</c> is the cursor for the next page (pass it as <c>after</c>), null at the end.</summary>
internal sealed record RetainedPage(RetainedMessageView[] Items, string? Next);

/// <summary>A retained message: its payload as base64, and as text when it is valid UTF-8.</summary>
internal sealed record RetainedMessageView(string Topic, byte Qos, string Payload, string? PayloadText, int PayloadBytes, string? ContentType, DateTime? ExpiresAtUtc, string? SenderClientId);

/// <summary>
/// A message to publish as a client would: <c>Payload</c> is UTF-8 text, <c>PayloadBase64</c> binary (at most one of
/// them; neither is an empty payload, which with <c>Retain</c> deletes the topic's retained message).
/// </summary>
internal sealed record PublishRequest(string? Topic, string? Payload = null, string? PayloadBase64 = null, byte Qos = 0, bool Retain = false);

/// <summary>How many sessions the message was handed to.</summary>
internal sealed record PublishResponse(int Sessions);

/// <summary>The cluster's members: silos from the membership, gateways from the gateway directory, and this gateway.</summary>
internal sealed record NodesView(SiloView[] Silos, GatewayStatus[] Gateways, ThisGatewayView ThisGateway);

/// <summary>A silo as the membership table lists it.</summary>
internal sealed record SiloView(string Address, string? Name, string? HostName, string Status, DateTime StartTimeUtc, DateTime LastAliveUtc);

/// <summary>The gateway that answered.</summary>
internal sealed record ThisGatewayView(string GatewayId, bool Ready, int Connections);

/// <summary>
/// The cluster's health in one word: <c>healthy</c> (this gateway ready, a silo active, no gateway known dead that is
/// still listed as reporting), <c>degraded</c> (this gateway is draining or a known gateway missed its heartbeats) or
/// <c>unavailable</c> (no active silo).
/// </summary>
internal sealed record HealthView(string Status, int ActiveSilos, int AliveGateways, int SilentGateways, bool ThisGatewayReady);
