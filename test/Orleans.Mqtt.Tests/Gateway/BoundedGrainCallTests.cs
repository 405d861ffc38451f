using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Orleans.Mqtt.Grains;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// Grain calls a client waits on that nobody answers (as a call to a killed silo is answered by nobody until Orleans'
/// 30 s response timeout): each is given up after <c>Mqtt:PublishTimeout</c>, asked once more where that is safe, and
/// otherwise answered with a failure code or a closed connection; nothing acknowledged is lost. One broker (silo and
/// gateway) in this process, with a grain call filter that holds chosen calls until the gateway cancels them.
/// </summary>
public sealed class BoundedGrainCallTests(BoundedGrainCallTests.Broker broker) : IClassFixture<BoundedGrainCallTests.Broker>
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_QoS2_duplicate_check_nobody_answers_is_asked_again_and_the_publish_goes_through()
    {
        var id = NewId("qos2-pending");
        var topic = "bounded/" + id;
        using var subscriber = await broker.ConnectAsync("sub-" + id, MqttProtocolVersion.V500, cleanStart: true);
        var received = Received(subscriber);
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.ExactlyOnce);
        using var publisher = await broker.ConnectAsync(id, MqttProtocolVersion.V500, cleanStart: true);
        var retriedBefore = broker.Count("qos2_pending", "retried");
        var held = broker.Calls.Hold(nameof(IClientSessionGrain.IsInboundQos2Pending), c => c.TargetId.Key.ToString() == id, times: 1);

        var clock = Stopwatch.StartNew();
        var result = await publisher.PublishAsync(Message(topic, "once", MqttQualityOfServiceLevel.ExactlyOnce));
        var waited = clock.Elapsed;

        Assert.True(held.IsCompleted, "the duplicate check was never held");
        Assert.Equal(MqttClientPublishReasonCode.Success, result.ReasonCode);
        Assert.InRange(waited, Bound - TimeSpan.FromMilliseconds(100), Bound + Slack);
        Assert.Equal("once", await received.Task.WaitAsync(Patience));
        Assert.Equal(retriedBefore + 1, broker.Count("qos2_pending", "retried"));
    }

    [Fact]
    public async Task A_QoS1_publish_whose_shard_does_not_answer_is_routed_again_and_acknowledged()
    {
        var id = NewId("route");
        var topic = "bounded/" + id;
        using var subscriber = await broker.ConnectAsync("sub-" + id, MqttProtocolVersion.V500, cleanStart: true);
        var received = Received(subscriber);
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        using var publisher = await broker.ConnectAsync(id, MqttProtocolVersion.V500, cleanStart: true);
        var held = broker.Calls.Hold("Publish", c => CarriesTopic(c, topic), times: 1);
        var heldBatch = broker.Calls.Hold("PublishBatch", c => CarriesTopic(c, topic), times: 1);

        var clock = Stopwatch.StartNew();
        var result = await publisher.PublishAsync(Message(topic, "routed", MqttQualityOfServiceLevel.AtLeastOnce));
        var waited = clock.Elapsed;

        Assert.True(held.IsCompleted || heldBatch.IsCompleted, "the shard call was never held");
        Assert.Equal(MqttClientPublishReasonCode.Success, result.ReasonCode);
        Assert.InRange(waited, Bound - TimeSpan.FromMilliseconds(100), Bound + Slack);
        Assert.Equal("routed", await received.Task.WaitAsync(Patience));
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V500)]
    [InlineData(MqttProtocolVersion.V311)]
    public async Task A_PUBREL_the_session_never_answers_closes_the_connection_and_the_acknowledged_message_is_delivered(MqttProtocolVersion version)
    {
        var id = NewId("pubrel-" + version);
        var topic = "bounded/" + id;
        using var subscriber = await broker.ConnectAsync("sub-" + id, MqttProtocolVersion.V500, cleanStart: true);
        var received = Received(subscriber);
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.ExactlyOnce);
        using var publisher = await broker.ConnectAsync(id, version, cleanStart: false);
        var closed = Closed(publisher);
        var failedBefore = broker.Count("qos2_release", "failed");
        var held = broker.Calls.Hold(nameof(IClientSessionGrain.ReleaseInboundQos2), c => c.TargetId.Key.ToString() == id, times: 2);

        var clock = Stopwatch.StartNew();
        var publish = publisher.PublishAsync(Message(topic, "acknowledged", MqttQualityOfServiceLevel.ExactlyOnce));
        var reason = await closed.Task.WaitAsync(Patience);
        var waited = clock.Elapsed;

        // PUBREC came (the message was routed): the subscriber has it. PUBCOMP did not: the client sends PUBREL again
        // when it resumes the session, which still holds the packet id.
        Assert.True(held.IsCompleted, "PUBREL was never held");
        Assert.Equal("acknowledged", await received.Task.WaitAsync(Patience));
        await Assert.ThrowsAnyAsync<Exception>(() => publish);
        Assert.InRange(waited, 2 * Bound - TimeSpan.FromMilliseconds(100), 2 * Bound + Slack);
        if (version == MqttProtocolVersion.V500)
        {
            Assert.Equal(MqttClientDisconnectReason.UnspecifiedError, reason);
        }

        Assert.Equal(failedBefore + 1, broker.Count("qos2_release", "failed"));
    }

    [Fact]
    public async Task A_PUBACK_the_session_never_answers_closes_the_subscriber_which_gets_the_message_again_when_it_resumes()
    {
        var id = NewId("puback");
        var topic = "bounded/" + id;
        var subscriber = await broker.ConnectAsync(id, MqttProtocolVersion.V500, cleanStart: false);
        var first = Received(subscriber);
        var closed = Closed(subscriber);
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        using var publisher = await broker.ConnectAsync("pub-" + id, MqttProtocolVersion.V500, cleanStart: true);
        var held = broker.Calls.Hold(nameof(IClientSessionGrain.AcknowledgeBatch), c => c.TargetId.Key.ToString() == id, times: 1);

        await publisher.PublishAsync(Message(topic, "keep me", MqttQualityOfServiceLevel.AtLeastOnce));
        Assert.Equal("keep me", await first.Task.WaitAsync(Patience));
        var clock = Stopwatch.StartNew();
        var reason = await closed.Task.WaitAsync(Patience);
        var waited = clock.Elapsed;

        Assert.True(held.IsCompleted, "the acknowledgement was never held");
        Assert.Equal(MqttClientDisconnectReason.UnspecifiedError, reason);
        Assert.True(waited < Bound + Slack, $"closed {waited} after the message arrived; the bound is {Bound}");
        subscriber.Dispose();

        // The acknowledgement never reached the session: the message is still in flight there and comes again.
        using var resumed = new MqttClientFactory().CreateMqttClient();
        var again = Received(resumed);
        var connected = await resumed.ConnectAsync(broker.Options(id, MqttProtocolVersion.V500, cleanStart: false));
        Assert.True(connected.IsSessionPresent);
        Assert.Equal("keep me", await again.Task.WaitAsync(Patience));
    }

    [Fact]
    public async Task A_SUBSCRIBE_the_session_never_answers_gets_SUBACK_failure_and_a_later_one_succeeds()
    {
        var id = NewId("subscribe");
        using var client = await broker.ConnectAsync(id, MqttProtocolVersion.V500, cleanStart: true);
        var failedBefore = broker.Count("subscribe", "failed");
        var held = broker.Calls.Hold(nameof(IClientSessionGrain.Subscribe), c => c.TargetId.Key.ToString() == id, times: 2);

        var clock = Stopwatch.StartNew();
        var refused = await client.SubscribeAsync("bounded/" + id, MqttQualityOfServiceLevel.AtLeastOnce);
        var waited = clock.Elapsed;

        Assert.True(held.IsCompleted, "SUBSCRIBE was never held");
        Assert.Equal(MqttClientSubscribeResultCode.UnspecifiedError, Assert.Single(refused.Items).ResultCode);
        Assert.InRange(waited, 2 * Bound - TimeSpan.FromMilliseconds(100), 2 * Bound + Slack);
        Assert.Equal(failedBefore + 1, broker.Count("subscribe", "failed"));
        Assert.True(client.IsConnected);

        var granted = await client.SubscribeAsync("bounded/" + id, MqttQualityOfServiceLevel.AtLeastOnce);
        Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS1, Assert.Single(granted.Items).ResultCode);
    }

    private static string NewId(string what) => what + "-" + Guid.NewGuid().ToString("N")[..8];

    private static MqttApplicationMessage Message(string topic, string payload, MqttQualityOfServiceLevel qos) =>
        new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(qos).Build();

    private static bool CarriesTopic(IIncomingGrainCallContext context, string topic) =>
        context.Request.GetArgument(0) switch
        {
            MqttMessage message => message.Topic == topic,
            MqttMessage[] messages => Array.Exists(messages, m => m.Topic == topic),
            _ => false,
        };

    private static TaskCompletionSource<string> Received(IMqttClient client)
    {
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.ApplicationMessageReceivedAsync += e =>
        {
            received.TrySetResult(e.ApplicationMessage.ConvertPayloadToString());
            return Task.CompletedTask;
        };
        return received;
    }

    private static TaskCompletionSource<MqttClientDisconnectReason> Closed(IMqttClient client)
    {
        var closed = new TaskCompletionSource<MqttClientDisconnectReason>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.DisconnectedAsync += e =>
        {
            closed.TrySetResult(e.Reason);
            return Task.CompletedTask;
        };
        return closed;
    }

    /// <summary>The broker the tests share, with <c>Mqtt:PublishTimeout</c> at 1 s.</summary>
    public sealed class Broker : IAsyncLifetime
    {
        private InProcessBroker _broker = null!;

        /// <summary>The calls held instead of answered.</summary>
        public UnansweredCalls Calls { get; } = new();

        public async Task InitializeAsync() => _broker = await InProcessBroker.StartAsync(
            new Dictionary<string, string?> { ["Mqtt:PublishTimeout"] = Bound.ToString() },
            services => services.AddSingleton<IIncomingGrainCallFilter>(Calls),
            "mqtt.grain_calls.unanswered",
            "call",
            "outcome");

        public async Task DisposeAsync()
        {
            Calls.ReleaseAll();
            await _broker.DisposeAsync();
        }

        /// <summary>How often <c>mqtt.grain_calls.unanswered</c> counted the call with the outcome.</summary>
        public long Count(string call, string outcome) => _broker.Count(call, outcome);

        public MqttClientOptions Options(string clientId, MqttProtocolVersion version, bool cleanStart) => _broker.Options(clientId, version, cleanStart);

        public Task<IMqttClient> ConnectAsync(string clientId, MqttProtocolVersion version, bool cleanStart) => _broker.ConnectAsync(clientId, version, cleanStart);
    }

    /// <summary>
    /// Holds chosen grain calls instead of running them, as a silo that was killed holds them: nobody answers, until
    /// the caller gives up and its cancellation reaches the grain (then the call ends as cancelled, never having run).
    /// </summary>
    public sealed class UnansweredCalls : IIncomingGrainCallFilter
    {
        private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);
        private readonly ConcurrentQueue<Rule> _rules = new();
        private readonly CancellationTokenSource _stop = new();

        /// <summary>Holds the next <paramref name="times"/> calls of <paramref name="method"/> that match; completes when the first is held.</summary>
        public Task Hold(string method, Func<IIncomingGrainCallContext, bool> match, int times)
        {
            var rule = new Rule(method, match, times);
            _rules.Enqueue(rule);
            return rule.Held.Task;
        }

        public void ReleaseAll() => _stop.Cancel();

        public async Task Invoke(IIncomingGrainCallContext context)
        {
            foreach (var rule in _rules)
            {
                if (rule.Method == context.MethodName && rule.Match(context) && rule.TryTake())
                {
                    using var until = CancellationTokenSource.CreateLinkedTokenSource(context.Request.GetCancellationToken(), _stop.Token);
                    try
                    {
                        await Task.Delay(Limit, until.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        throw new OperationCanceledException("held until the caller gave up");
                    }

                    throw new TimeoutException($"the caller of {context.MethodName} did not cancel it within {Limit}");
                }
            }

            await context.Invoke();
        }

        private sealed class Rule(string method, Func<IIncomingGrainCallContext, bool> match, int times)
        {
            private int _left = times;

            public string Method { get; } = method;

            public Func<IIncomingGrainCallContext, bool> Match { get; } = match;

            public TaskCompletionSource Held { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

            public bool TryTake()
            {
                if (Interlocked.Decrement(ref _left) < 0)
                {
                    return false;
                }

                Held.TrySetResult();
                return true;
            }
        }
    }
}
