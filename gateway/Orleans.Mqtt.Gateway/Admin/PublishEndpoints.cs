using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// <c>/api/v1/publish</c>: publishes a message through its topic's shard, as a client's PUBLISH is routed (retained
/// store, QoS 1/2 stored by every subscriber session before the call returns). The clients' ACL does not apply: the
/// API key authorizes admin calls.
/// </summary>
internal static class PublishEndpoints
{
    public static void Map(RouteGroupBuilder publish) =>
        publish.MapPost("/", PublishAsync).WithName("Publish")
            .WithSummary("Publishes a message as a client would; returns how many sessions it was handed to.");

    private static async Task<Results<Ok<PublishResponse>, ProblemHttpResult>> PublishAsync(
        AdminCluster cluster, AdminAudit audit, HttpContext context, PublishRequest request)
    {
        if (string.IsNullOrEmpty(request.Topic) || !MqttTopic.IsValidTopicName(request.Topic))
        {
            return AdminProblems.BadRequest($"topic '{request.Topic}' is not a valid topic name (not empty, no wildcards).");
        }

        if (request.Qos > 2)
        {
            return AdminProblems.BadRequest($"qos must be 0, 1 or 2 (was {request.Qos}).");
        }

        if (request.Payload is not null && request.PayloadBase64 is not null)
        {
            return AdminProblems.BadRequest("give payload (text) or payloadBase64 (binary), not both.");
        }

        byte[] payload;
        try
        {
            payload = request.PayloadBase64 is { } base64 ? Convert.FromBase64String(base64) : Encoding.UTF8.GetBytes(request.Payload ?? string.Empty);
        }
        catch (FormatException)
        {
            return AdminProblems.BadRequest("payloadBase64 is not valid base64.");
        }

        if (payload.Length > cluster.Gateway.Options.MaxPacketSize)
        {
            return AdminProblems.BadRequest($"the payload ({payload.Length} bytes) is over Mqtt:MaxPacketSize ({cluster.Gateway.Options.MaxPacketSize}).");
        }

        var message = new MqttMessage { Topic = request.Topic, Payload = payload, Qos = request.Qos, Retain = request.Retain };
        var sessions = await cluster.ShardOf(request.Topic).Publish(message);
        audit.Record(context, "publish", request.Topic, $"qos {request.Qos}, retain {request.Retain}, {payload.Length} bytes, {sessions} sessions");
        return TypedResults.Ok(new PublishResponse(sessions));
    }
}
