using System.Collections.Concurrent;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// The ACL file (<c>Mqtt:AclFile</c>) against the real broker, both MQTT versions, with clients trying to get around it:
/// wide and wildcard subscriptions, <c>$share</c>, <c>$SYS</c>, retained messages, wills, topic aliases, client ids that
/// would expand into another device's topics, and the file changed while they are connected.
/// </summary>
public sealed class AuthorizationTests : IAsyncLifetime
{
    private const string Rules = """
        # anonymous clients
        topic read acl/public/#

        pattern readwrite acl/devices/%c/#
        pattern deny acl/devices/%c/secret
        pattern readwrite acl/reload/%c

        user ops
        topic read acl/devices/#
        topic read $SYS/#
        """;

    private string _directory = null!;
    private string _aclFile = null!;
    private BrokerProcess _broker = null!;

    public async Task InitializeAsync()
    {
        _directory = BrokerProcess.TempDirectory();
        _aclFile = Path.Combine(_directory, "acl");
        await File.WriteAllTextAsync(_aclFile, Rules);
        var usersFile = Path.Combine(_directory, "users");
        await UsersFileTool.AddUserAsync(usersFile, "ops", "ops-password");
        _broker = await BrokerProcess.StartAsync(new Dictionary<string, string>
        {
            ["Mqtt__AclFile"] = _aclFile,
            ["Mqtt__Acl__ReloadCheckInterval"] = "00:00:01",
            ["Mqtt__UsersFile"] = usersFile,
            ["Mqtt__AllowAnonymous"] = "true",

            // A small in-flight window: QoS 1/2 messages withheld from a client must leave it, or deliveries stall.
            ["Mqtt__MaxInflightMessages"] = "4",
        });
    }

    public async Task DisposeAsync()
    {
        await _broker.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task Wide_subscriptions_deliver_only_what_the_client_may_read(MqttProtocolVersion version)
    {
        var (a, b) = (Id("a"), Id("b"));
        using var other = await ConnectAsync(version, b);
        await PublishAsync(other, $"acl/devices/{b}/state", "b-retained", retain: true);
        using var device = await ConnectAsync(version, a);
        await PublishAsync(device, $"acl/devices/{a}/state", "a-retained", retain: true);

        var received = Collect(device);
        var droppedBefore = await DroppedNotAuthorizedAsync();
        var result = await device.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter("#", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter("+/+/+/+", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter("acl/devices/+/cmd", MqttQualityOfServiceLevel.ExactlyOnce)
            .WithTopicFilter($"acl/devices/{b}/#")
            .WithTopicFilter("$SYS/#")
            .WithTopicFilter($"acl/devices/{a}/secret")
            .Build());

        var denied = version == MqttProtocolVersion.V500 ? MqttClientSubscribeResultCode.NotAuthorized : MqttClientSubscribeResultCode.UnspecifiedError;
        Assert.Equal(
            [MqttClientSubscribeResultCode.GrantedQoS1, MqttClientSubscribeResultCode.GrantedQoS1, MqttClientSubscribeResultCode.GrantedQoS2, denied, denied, denied],
            result.Items.Select(i => i.ResultCode));

        // Its own retained message arrives; the other device's, which every wide filter matches, does not.
        await received.WaitForAsync($"acl/devices/{a}/state");
        await WaitUntilAsync(async () => await DroppedNotAuthorizedAsync() > droppedBefore);

        // Live messages: the other device's command (QoS 1 and 2, which must not stall the in-flight window) is withheld.
        for (var i = 0; i < 30; i++)
        {
            await PublishAsync(other, $"acl/devices/{b}/cmd", "for-b", qos: (MqttQualityOfServiceLevel)(1 + (i % 2)));
        }

        await PublishAsync(device, $"acl/devices/{a}/cmd", "for-a", qos: MqttQualityOfServiceLevel.ExactlyOnce);
        await received.WaitForAsync($"acl/devices/{a}/cmd");
        await WaitUntilAsync(async () => await DroppedNotAuthorizedAsync() >= droppedBefore + 31);
        Assert.DoesNotContain(received.Topics, t => t.Contains(b, StringComparison.Ordinal));

        // The in-flight window (4 here) was not stalled by the 30 withheld QoS 1/2 messages: a later one still arrives.
        await PublishAsync(device, $"acl/devices/{a}/later", "again", qos: MqttQualityOfServiceLevel.AtLeastOnce);
        await received.WaitForAsync($"acl/devices/{a}/later");
        Assert.DoesNotContain(received.Topics, t => t.Contains(b, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task A_shared_subscription_is_judged_on_its_filter_and_SYS_only_by_rule(MqttProtocolVersion version)
    {
        var a = Id("a");
        using var device = await ConnectAsync(version, a);
        var result = await device.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter($"$share/g/acl/devices/{a}/#")
            .WithTopicFilter("$share/g/acl/devices/other/#")
            .WithTopicFilter("$SYS/broker/uptime")
            .Build());
        var denied = version == MqttProtocolVersion.V500 ? MqttClientSubscribeResultCode.NotAuthorized : MqttClientSubscribeResultCode.UnspecifiedError;
        Assert.Equal([MqttClientSubscribeResultCode.GrantedQoS0, denied, denied], result.Items.Select(i => i.ResultCode));

        using var ops = await ConnectAsync(version, Id("ops"), "ops", "ops-password");
        var opsResult = await ops.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter("$SYS/#").WithTopicFilter("acl/public/#").Build());
        Assert.Equal([MqttClientSubscribeResultCode.GrantedQoS0, denied], opsResult.Items.Select(i => i.ResultCode));
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task A_publish_the_client_may_not_write_is_refused_and_never_routed(MqttProtocolVersion version)
    {
        var (a, b) = (Id("a"), Id("b"));
        using var ops = await ConnectAsync(version, Id("ops"), "ops", "ops-password");
        var seen = Collect(ops);
        await ops.SubscribeAsync("acl/devices/#");
        using var device = await ConnectAsync(version, a);
        var deniedBefore = await _broker.GetCounterAsync("mqtt_acl_denied_total", "action=\"publish\"");

        var qos1 = await device.PublishAsync(Message($"acl/devices/{b}/cmd", MqttQualityOfServiceLevel.AtLeastOnce));
        var qos2 = await device.PublishAsync(Message($"acl/devices/{a}/secret", MqttQualityOfServiceLevel.ExactlyOnce));
        await device.PublishAsync(Message($"acl/public/news", MqttQualityOfServiceLevel.AtMostOnce));
        if (version == MqttProtocolVersion.V500)
        {
            Assert.Equal(MqttClientPublishReasonCode.NotAuthorized, qos1.ReasonCode);
            Assert.Equal(MqttClientPublishReasonCode.NotAuthorized, qos2.ReasonCode);
        }
        else
        {
            // MQTT 3.1.1 has no refusing acknowledgement: acknowledged and dropped (Mqtt:Acl:DenyAction Drop).
            Assert.True(qos1.IsSuccess && qos2.IsSuccess);
        }

        await PublishAsync(device, $"acl/devices/{a}/ok", "allowed");
        await seen.WaitForAsync($"acl/devices/{a}/ok");
        Assert.True(await _broker.GetCounterAsync("mqtt_acl_denied_total", "action=\"publish\"") >= deniedBefore + 3);
        Assert.Equal([$"acl/devices/{a}/ok"], seen.Topics);
        Assert.True(device.IsConnected);
    }

    [Fact]
    public async Task A_topic_alias_cannot_carry_a_denied_topic()
    {
        var a = Id("a");
        await using var raw = await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 5, a);
        var alias = Mqtt5Properties.Of(Mqtt5Properties.TwoByte(0x23, 1));

        // Set alias 1 to another device's topic: refused; used alone afterwards: refused again.
        await raw.SendAsync(RawMqttClient.Publish($"acl/devices/{Id("b")}/cmd", "x"u8.ToArray(), qos: 1, packetId: 1, v5: true, properties: alias));
        Assert.Equal(0x87, await PubAckReasonAsync(raw, 1));
        await raw.SendAsync(RawMqttClient.Publish(string.Empty, "x"u8.ToArray(), qos: 1, packetId: 2, v5: true, properties: alias));
        Assert.Equal(0x87, await PubAckReasonAsync(raw, 2));

        // Alias 1 set again to its own topic works.
        await raw.SendAsync(RawMqttClient.Publish($"acl/devices/{a}/up", "x"u8.ToArray(), qos: 1, packetId: 3, v5: true, properties: alias));
        Assert.NotEqual(0x87, await PubAckReasonAsync(raw, 3));
        await raw.SendAsync(RawMqttClient.Publish(string.Empty, "x"u8.ToArray(), qos: 1, packetId: 4, v5: true, properties: alias));
        Assert.NotEqual(0x87, await PubAckReasonAsync(raw, 4));
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task A_will_is_published_only_where_its_client_may_write(MqttProtocolVersion version)
    {
        var (a, b) = (Id("a"), Id("b"));
        using var ops = await ConnectAsync(version, Id("ops"), "ops", "ops-password");
        var seen = Collect(ops);
        await ops.SubscribeAsync("acl/devices/#");
        var willsBefore = await _broker.GetCounterAsync("mqtt_acl_denied_total", "action=\"will\"");

        var sneaky = await ConnectAsync(version, a, will: $"acl/devices/{b}/cmd");
        Assert.True(await _broker.GetCounterAsync("mqtt_acl_denied_total", "action=\"will\"") >= willsBefore + 1);
        var honest = await ConnectAsync(version, b, will: $"acl/devices/{b}/gone");

        // Both go away without DISCONNECT: only the will to the client's own topic is published.
        sneaky.Dispose();
        honest.Dispose();
        await seen.WaitForAsync($"acl/devices/{b}/gone");
        Assert.Equal([$"acl/devices/{b}/gone"], seen.Topics);
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311, "+")]
    [InlineData(MqttProtocolVersion.V500, "#")]
    [InlineData(MqttProtocolVersion.V500, "victim/cmd")]
    [InlineData(MqttProtocolVersion.V311, "victim/+")]
    public async Task A_client_id_with_topic_characters_gets_no_other_device_topics(MqttProtocolVersion version, string clientId)
    {
        using var victim = await ConnectAsync(version, "victim");
        var victimSeen = Collect(victim);
        await victim.SubscribeAsync("acl/devices/victim/#");

        using var attacker = await ConnectAsync(version, clientId);
        var attackerSeen = Collect(attacker);
        var result = await attacker.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter("acl/devices/victim/#").WithTopicFilter("acl/devices/victim/cmd/#").WithTopicFilter("acl/public/#").Build());
        var denied = version == MqttProtocolVersion.V500 ? MqttClientSubscribeResultCode.NotAuthorized : MqttClientSubscribeResultCode.UnspecifiedError;
        Assert.Equal([denied, denied, MqttClientSubscribeResultCode.GrantedQoS0], result.Items.Select(i => i.ResultCode));

        var publish = await attacker.PublishAsync(Message("acl/devices/victim/cmd/x", MqttQualityOfServiceLevel.AtLeastOnce));
        if (version == MqttProtocolVersion.V500)
        {
            Assert.Equal(MqttClientPublishReasonCode.NotAuthorized, publish.ReasonCode);
        }

        await PublishAsync(victim, "acl/devices/victim/cmd/y", "own");
        await victimSeen.WaitForAsync("acl/devices/victim/cmd/y");
        Assert.Equal(["acl/devices/victim/cmd/y"], victimSeen.Topics);
        Assert.Empty(attackerSeen.Topics);
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task A_changed_file_applies_to_connected_clients_and_a_broken_one_is_refused(MqttProtocolVersion version)
    {
        var a = Id("a");
        using var device = await ConnectAsync(version, a);
        var seen = Collect(device);
        await device.SubscribeAsync($"acl/reload/{a}");
        await PublishAsync(device, $"acl/reload/{a}", "before");
        await seen.WaitForAsync($"acl/reload/{a}");

        try
        {
            // Broken: refused with its line, and the rules in force stay.
            var errors = await _broker.GetCounterAsync("mqtt_acl_reloads_total", "outcome=\"error\"");
            await ReplaceAclAsync(Rules + "\ngrant x\n");
            await _broker.WaitForOutputAsync(l => l.Contains("refused at line 11", StringComparison.Ordinal));
            Assert.True(await _broker.GetCounterAsync("mqtt_acl_reloads_total", "outcome=\"error\"") >= errors + 1);
            await PublishAsync(device, $"acl/reload/{a}", "still");
            await WaitUntilAsync(() => Task.FromResult(seen.Topics.Count >= 2));

            // Changed: the connected client may no longer write or read the topic.
            await ReplaceAclAndWaitAsync(Rules + "\npattern deny acl/reload/%c\n");
            var denied = await device.PublishAsync(Message($"acl/reload/{a}", MqttQualityOfServiceLevel.AtLeastOnce));
            if (version == MqttProtocolVersion.V500)
            {
                Assert.Equal(MqttClientPublishReasonCode.NotAuthorized, denied.ReasonCode);
            }

            Assert.Equal(2, seen.Topics.Count);
        }
        finally
        {
            await ReplaceAclAndWaitAsync(Rules);
        }

        // Back: allowed again, on the same connection and subscription.
        await PublishAsync(device, $"acl/reload/{a}", "after");
        await WaitUntilAsync(() => Task.FromResult(seen.Topics.Count >= 3));
    }

    private async Task ReplaceAclAsync(string text)
    {
        var temporary = _aclFile + ".new";
        await File.WriteAllTextAsync(temporary, text);
        File.Move(temporary, _aclFile, overwrite: true);
    }

    private async Task ReplaceAclAndWaitAsync(string text)
    {
        var before = await _broker.GetCounterAsync("mqtt_acl_reloads_total", "outcome=\"ok\"");
        await ReplaceAclAsync(text);
        await WaitUntilAsync(async () => await _broker.GetCounterAsync("mqtt_acl_reloads_total", "outcome=\"ok\"") > before);
    }

    private Task<double> DroppedNotAuthorizedAsync() => _broker.GetCounterAsync("mqtt_messages_dropped_total", "reason=\"not_authorized\"");

    private static async Task<byte> PubAckReasonAsync(RawMqttClient raw, ushort packetId)
    {
        var (header, body) = await raw.ReadPacketAsync() ?? throw new InvalidOperationException("closed before PUBACK");
        Assert.Equal(0x40, header);
        Assert.Equal(packetId, (body[0] << 8) | body[1]);
        return body.Length > 2 ? body[2] : (byte)0;
    }

    private async Task<IMqttClient> ConnectAsync(MqttProtocolVersion version, string clientId, string? user = null, string? password = null, string? will = null)
    {
        var builder = new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", _broker.MqttPort)
            .WithProtocolVersion(version)
            .WithClientId(clientId)
            .WithTimeout(TimeSpan.FromSeconds(10));
        if (user is not null)
        {
            builder.WithCredentials(user, password);
        }

        if (will is not null)
        {
            builder.WithWillTopic(will).WithWillPayload("gone").WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce);
        }

        var client = new MqttClientFactory().CreateMqttClient();
        var result = await client.ConnectAsync(builder.Build());
        Assert.Equal(MqttClientConnectResultCode.Success, result.ResultCode);
        return client;
    }

    private static async Task PublishAsync(IMqttClient client, string topic, string payload, MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtLeastOnce, bool retain = false)
    {
        var result = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(qos).WithRetainFlag(retain).Build());
        Assert.True(result.IsSuccess, $"publish to {topic}: {result.ReasonCode}");
    }

    private static MqttApplicationMessage Message(string topic, MqttQualityOfServiceLevel qos) =>
        new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("x").WithQualityOfServiceLevel(qos).Build();

    private static string Id(string role) => $"{role}{Guid.NewGuid():N}"[..12];

    private static Received Collect(IMqttClient client)
    {
        var received = new Received();
        client.ApplicationMessageReceivedAsync += e =>
        {
            received.Add(e.ApplicationMessage.Topic);
            return Task.CompletedTask;
        };
        return received;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!await condition())
        {
            // Polls a metric or a received list: the signal the broker gives; the timeout is the failure.
            await Task.Delay(50, timeout.Token);
        }
    }

    /// <summary>Topics a client received, in order, and a wait for one of them.</summary>
    private sealed class Received
    {
        private readonly ConcurrentQueue<string> _topics = new();
        private readonly ConcurrentDictionary<string, TaskCompletionSource> _waits = new();

        public IReadOnlyList<string> Topics => [.. _topics];

        public void Add(string topic)
        {
            _topics.Enqueue(topic);
            Wait(topic).TrySetResult();
        }

        public Task WaitForAsync(string topic) => Wait(topic).Task.WaitAsync(TimeSpan.FromSeconds(20));

        private TaskCompletionSource Wait(string topic) =>
            _waits.GetOrAdd(topic, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
    }
}
