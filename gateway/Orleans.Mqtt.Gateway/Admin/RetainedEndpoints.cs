using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// <c>/api/v1/retained</c>: retained messages listed by filter a page at a time (read from one active silo's replica,
/// which holds them all), one by topic, and deleted the way a client deletes one: an empty retained publish through
/// the topic's shard.
/// </summary>
internal static class RetainedEndpoints
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static void Map(RouteGroupBuilder retained)
    {
        retained.MapGet("/", ListAsync).WithName("ListRetained")
            .WithSummary("Retained messages whose topic matches filter (default #), a page at a time in topic order.");
        retained.MapGet("/{**topic}", GetAsync).WithName("GetRetained")
            .WithSummary("The retained message of one topic (the rest of the path, URL-encoded).");
        retained.MapDelete("/{**topic}", DeleteAsync).WithName("DeleteRetained")
            .WithSummary("Deletes the retained message of one topic, as an empty retained publish would.");
    }

    private static async Task<Results<Ok<RetainedPage>, ProblemHttpResult>> ListAsync(
        AdminCluster cluster, [FromQuery] string? filter, [FromQuery] int? limit, [FromQuery] string? after)
    {
        filter = string.IsNullOrEmpty(filter) ? "#" : filter;
        if (!MqttTopic.IsValidTopicFilter(filter))
        {
            return AdminProblems.BadRequest($"filter '{filter}' is not a valid topic filter.");
        }

        if (!AdminProblems.TryPageSize(limit, out var size, out var problem))
        {
            return problem!;
        }

        var page = await (await AnySiloAsync(cluster)).ListRetained(filter, string.IsNullOrEmpty(after) ? null : after, size);
        return TypedResults.Ok(new RetainedPage([.. page.Select(View)], page.Length == size ? page[^1].Topic : null));
    }

    private static async Task<Results<Ok<RetainedMessageView>, ProblemHttpResult>> GetAsync(AdminCluster cluster, string topic) =>
        TopicError(topic) is { } error ? error
        : await FindAsync(cluster, topic) is { } found ? TypedResults.Ok(View(found))
        : NoRetained(topic);

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(AdminCluster cluster, AdminAudit audit, HttpContext context, string topic)
    {
        if (TopicError(topic) is { } error)
        {
            return error;
        }

        if (await FindAsync(cluster, topic) is null)
        {
            return NoRetained(topic);
        }

        // Acknowledged once every active silo's replica has applied the deletion, as a client's retained publish is.
        await cluster.ShardOf(topic).Publish(new MqttMessage { Topic = topic, Retain = true });
        audit.Record(context, "retained_delete", topic);
        return TypedResults.NoContent();
    }

    private static async Task<RetainedMessageInfo?> FindAsync(AdminCluster cluster, string topic)
    {
        var found = await (await AnySiloAsync(cluster)).ListRetained(topic, after: null, limit: 1);
        return found.Length == 1 && found[0].Topic == topic ? found[0] : null;
    }

    private static async Task<IAdminQueryGrain> AnySiloAsync(AdminCluster cluster)
    {
        var silos = await cluster.ActiveSilosAsync();
        if (silos.Length == 0)
        {
            throw new OrleansException("No silo is active.");
        }

        return cluster.Query(silos[Random.Shared.Next(silos.Length)]);
    }

    private static ProblemHttpResult? TopicError(string topic) =>
        MqttTopic.IsValidTopicName(topic) ? null : AdminProblems.BadRequest($"'{topic}' is not a valid topic name.");

    private static ProblemHttpResult NoRetained(string topic) => AdminProblems.NotFound($"No retained message on topic '{topic}'.");

    private static RetainedMessageView View(RetainedMessageInfo info)
    {
        var m = info.Message;
        string? text;
        try
        {
            text = StrictUtf8.GetString(m.Payload.Span);
        }
        catch (DecoderFallbackException)
        {
            text = null;
        }

        return new RetainedMessageView(
            info.Topic, m.Qos, Convert.ToBase64String(m.Payload.Span), text, m.Payload.Length, m.Properties?.ContentType, m.ExpiresAtUtc, m.SenderClientId);
    }
}
