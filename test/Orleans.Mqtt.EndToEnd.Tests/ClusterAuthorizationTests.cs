using System.Collections.Concurrent;
using MQTTnet;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// The ACL file changed while clients are connected to a cluster: both gateways, each watching the same file, apply
/// the new rules, the publisher's gateway to its PUBLISH and the subscriber's gateway to its deliveries.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterAuthorizationTests(ClusterFixture cluster)
{
    [Fact]
    public async Task Both_gateways_apply_a_changed_acl_file_to_connected_clients()
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var (pub, sub) = ($"pub{run}", $"sub{run}");
        using var subscriber = await MqttClients.ConnectAsync(cluster.GatewayBMqttPort, sub);
        var received = new ConcurrentQueue<string>();
        var marker = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        subscriber.ApplicationMessageReceivedAsync += e =>
        {
            received.Enqueue(e.ApplicationMessage.Topic);
            (e.ApplicationMessage.Topic.EndsWith("/marker", StringComparison.Ordinal) ? marker : first).TrySetResult();
            return Task.CompletedTask;
        };
        await subscriber.SubscribeAsync($"cacl/{run}/#", MqttQualityOfServiceLevel.AtLeastOnce);
        using var publisher = await MqttClients.ConnectAsync(cluster.GatewayAMqttPort, pub);

        // Before: the subscriber's own topic reaches it across the gateways.
        await Publish(publisher, $"cacl/{run}/{sub}", MqttClientPublishReasonCode.Success);
        await first.Task.WaitAsync(TimeSpan.FromSeconds(20));

        try
        {
            // After: each client is denied the topic named after it, on its own gateway.
            await ReplaceAndWaitAsync(ClusterFixture.AllowAllRules + $"pattern deny cacl/{run}/%c\n");
            var withheldBefore = await Metrics.ScrapeAsync(cluster.Gateways[1].HttpPort);

            await Publish(publisher, $"cacl/{run}/{pub}", MqttClientPublishReasonCode.NotAuthorized);
            await Publish(publisher, $"cacl/{run}/{sub}", MqttClientPublishReasonCode.Success);
            await Publish(publisher, $"cacl/{run}/marker", MqttClientPublishReasonCode.Success);
            await marker.Task.WaitAsync(TimeSpan.FromSeconds(20));
            await WaitUntilAsync(async () =>
                Metrics.Sum(await Metrics.ScrapeAsync(cluster.Gateways[1].HttpPort), "mqtt_messages_dropped_total", "reason=\"not_authorized\"")
                > Metrics.Sum(withheldBefore, "mqtt_messages_dropped_total", "reason=\"not_authorized\""));
            Assert.Equal([$"cacl/{run}/{sub}", $"cacl/{run}/marker"], received);
        }
        finally
        {
            await ReplaceAndWaitAsync(ClusterFixture.AllowAllRules);
        }
    }

    private static async Task Publish(IMqttClient client, string topic, MqttClientPublishReasonCode expected)
    {
        var result = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("x")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal(expected, result.ReasonCode);
    }

    private async Task ReplaceAndWaitAsync(string rules)
    {
        var gateways = cluster.Gateways.Where(g => !g.HasExited).ToList();
        var before = new double[gateways.Count];
        for (var i = 0; i < gateways.Count; i++)
        {
            before[i] = Reloads(await Metrics.ScrapeAsync(gateways[i].HttpPort));
        }

        var temporary = cluster.AclFile + ".new";
        await File.WriteAllTextAsync(temporary, rules);
        File.Move(temporary, cluster.AclFile, overwrite: true);
        for (var i = 0; i < gateways.Count; i++)
        {
            var gateway = gateways[i];
            var was = before[i];
            await WaitUntilAsync(async () => Reloads(await Metrics.ScrapeAsync(gateway.HttpPort)) > was);
        }
    }

    private static double Reloads(string metrics) => Metrics.Sum(metrics, "mqtt_acl_reloads_total", "outcome=\"ok\"");

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!await condition())
        {
            // Polls the gateways' metrics, the signal they give; the timeout is the failure.
            await Task.Delay(100, timeout.Token);
        }
    }
}
