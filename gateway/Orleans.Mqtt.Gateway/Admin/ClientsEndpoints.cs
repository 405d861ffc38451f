using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// <c>/api/v1/clients</c>: the cluster-wide listing (each active silo returns the page of the clients it owns, the
/// gateway merges them), one client from its session grain, disconnecting it, and changing its subscriptions.
/// </summary>
internal static class ClientsEndpoints
{
    public static void Map(RouteGroupBuilder clients)
    {
        clients.MapGet("/", ListAsync).WithName("ListClients")
            .WithSummary("Clients of the whole cluster, a page at a time, in client-id order; filter by client-id prefix, user or gateway.");
        clients.MapGet("/{clientId}", GetAsync).WithName("GetClient")
            .WithSummary("One client: connection, session, subscriptions, queue length and in-flight messages.");
        clients.MapPost("/{clientId}/disconnect", DisconnectAsync).WithName("DisconnectClient")
            .WithSummary("Disconnects the client wherever it is connected (MQTT 5: DISCONNECT 0x98); discardSession=true also ends its session.");
        clients.MapPost("/{clientId}/subscriptions", SubscribeAsync).WithName("AddSubscriptions")
            .WithSummary("Adds subscriptions to the client's session, routable on every silo when the call returns.");
        clients.MapDelete("/{clientId}/subscriptions", UnsubscribeAsync).WithName("RemoveSubscriptions")
            .WithSummary("Removes the subscriptions named by the filter query parameters.");
    }

    private static async Task<Results<Ok<ClientPage>, ProblemHttpResult>> ListAsync(
        AdminCluster cluster,
        [FromQuery] string? prefix,
        [FromQuery] string? user,
        [FromQuery(Name = "gateway")] string? gatewayId,
        [FromQuery] int? limit,
        [FromQuery] string? after)
    {
        if (!AdminProblems.TryPageSize(limit, out var size, out var problem))
        {
            return problem!;
        }

        var query = new ClientQuery(size, NullIfEmpty(after), NullIfEmpty(prefix), NullIfEmpty(user), NullIfEmpty(gatewayId));
        var silos = await cluster.ActiveSilosAsync();
        var pages = await Task.WhenAll(silos.Select(s => cluster.Query(s).ListClients(query)));

        // Each silo's page holds its smallest ids after the cursor, so the smallest of their union are the cluster's.
        var merged = pages.SelectMany(p => p).OrderBy(c => c.ClientId, StringComparer.Ordinal).Take(size).ToArray();
        // More may follow when the union overflowed the page or some silo filled its own.
        var more = merged.Length > 0 && (pages.Sum(p => p.Length) > size || pages.Any(p => p.Length == size));
        return TypedResults.Ok(new ClientPage(merged, more ? merged[^1].ClientId : null));
    }

    private static async Task<Results<Ok<ClientDetails>, ProblemHttpResult>> GetAsync(MqttGateway gateway, string clientId) =>
        await gateway.Session(clientId).Describe() is { } details
            ? TypedResults.Ok(details)
            : NoSession(clientId);

    private static async Task<Results<NoContent, ProblemHttpResult>> DisconnectAsync(
        MqttGateway gateway, AdminAudit audit, HttpContext context, string clientId, [FromQuery] bool discardSession = false)
    {
        if (!await gateway.Session(clientId).Kick(discardSession))
        {
            return NoSession(clientId);
        }

        audit.Record(context, "kick", clientId, discardSession ? "session discarded" : "session kept");
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<SubscribeResponse>, ProblemHttpResult>> SubscribeAsync(
        MqttGateway gateway, AdminAudit audit, HttpContext context, string clientId, SubscribeRequest request)
    {
        if (request.Subscriptions is not { Length: > 0 } requested)
        {
            return AdminProblems.BadRequest("subscriptions must name at least one subscription.");
        }

        var subscriptions = new Subscription[requested.Length];
        for (var i = 0; i < requested.Length; i++)
        {
            if (SubscriptionError(requested[i]) is { } error)
            {
                return AdminProblems.BadRequest($"subscriptions[{i}]: {error}");
            }

            var s = requested[i];
            subscriptions[i] = new Subscription(s.Filter!, s.Qos, s.NoLocal, s.RetainAsPublished, s.RetainHandling);
        }

        if (await gateway.Session(clientId).AdminSubscribe(subscriptions) is not { } codes)
        {
            return NoSession(clientId);
        }

        audit.Record(context, "subscribe", clientId, string.Join(' ', subscriptions.Select(s => s.Filter)));
        return TypedResults.Ok(new SubscribeResponse([.. codes.Select(c => (int)c)]));
    }

    private static async Task<Results<Ok<UnsubscribeResponse>, ProblemHttpResult>> UnsubscribeAsync(
        MqttGateway gateway, AdminAudit audit, HttpContext context, string clientId, [FromQuery(Name = "filter")] string[]? filters)
    {
        if (filters is not { Length: > 0 })
        {
            return AdminProblems.BadRequest("name the subscriptions to remove with one or more filter query parameters (?filter=a/%23).");
        }

        if (await gateway.Session(clientId).AdminUnsubscribe(filters) is not { } existed)
        {
            return NoSession(clientId);
        }

        audit.Record(context, "unsubscribe", clientId, string.Join(' ', filters));
        return TypedResults.Ok(new UnsubscribeResponse(existed));
    }

    private static string? SubscriptionError(SubscriptionRequest s)
    {
        if (string.IsNullOrEmpty(s.Filter))
        {
            return "filter is missing.";
        }

        var shared = SharedSubscription.IsShared(s.Filter);
        if (shared ? !SharedSubscription.TryParse(s.Filter, out _, out _) : !MqttTopic.IsValidTopicFilter(s.Filter))
        {
            return $"'{s.Filter}' is not a valid topic filter.";
        }

        if (s.Qos > 2)
        {
            return $"qos must be 0, 1 or 2 (was {s.Qos}).";
        }

        if (s.RetainHandling > 2)
        {
            return $"retainHandling must be 0, 1 or 2 (was {s.RetainHandling}).";
        }

        return shared && s.NoLocal ? "noLocal is not allowed on a shared subscription." : null;
    }

    private static ProblemHttpResult NoSession(string clientId) => AdminProblems.NotFound($"No session for client id '{clientId}'.");

    private static string? NullIfEmpty(string? text) => string.IsNullOrEmpty(text) ? null : text;
}
