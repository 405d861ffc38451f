using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Orleans.Mqtt.Grains;
using Orleans.Mqtt.Ownership;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// A session whose <c>Connect</c> takes longer than <c>Mqtt:SessionConnectTimeout</c> (here its ownership commit is held,
/// as a session caught in a killed silo would hold it): the client gets CONNACK Server unavailable within the bound,
/// the session does not stay connected to the refused connection once the call completes, and the client's retry
/// gets the session; a takeover the gateway gave up on before the older connection was told leaves that connection the
/// session. One broker (silo and gateway) in this process, as the standalone broker runs.
/// </summary>
public sealed class SessionConnectTimeoutTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Patience = InProcessBroker.Patience;
    private readonly HeldCommits _commits = new();
    private InProcessBroker _broker = null!;

    // Registered before the silo's grains, whose in-memory ownership store only fills the place when none is set.
    public async Task InitializeAsync() => _broker = await InProcessBroker.StartAsync(
        new Dictionary<string, string?> { ["Mqtt:SessionConnectTimeout"] = Bound.ToString() },
        services => services.AddSingleton<ISessionOwnershipStore>(_commits),
        "mqtt.connections.abandoned");

    public async Task DisposeAsync()
    {
        _commits.ReleaseAll();
        await _broker.DisposeAsync();
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V500)]
    [InlineData(MqttProtocolVersion.V311)]
    public async Task A_connect_the_session_takes_too_long_for_is_refused_with_server_unavailable_and_leaves_the_session_not_connected(MqttProtocolVersion version)
    {
        var clientId = "slow-" + version + "-" + Guid.NewGuid().ToString("N")[..8];
        var willTopic = "will/" + clientId;
        using var watcher = await _broker.ConnectAsync("watcher-" + clientId, MqttProtocolVersion.V500, cleanStart: true);
        var wills = new ConcurrentQueue<string>();
        watcher.ApplicationMessageReceivedAsync += e =>
        {
            wills.Enqueue(e.ApplicationMessage.Topic);
            return Task.CompletedTask;
        };
        await watcher.SubscribeAsync(willTopic, MqttQualityOfServiceLevel.AtLeastOnce);

        _commits.Hold(clientId);
        using var client = new MqttClientFactory().CreateMqttClient();
        var clock = Stopwatch.StartNew();
        var refused = await client.ConnectAsync(_broker.Options(clientId, version, cleanStart: false, willTopic));
        var waited = clock.Elapsed;

        Assert.Equal(MqttClientConnectResultCode.ServerUnavailable, refused.ResultCode);
        Assert.True(waited >= Bound - TimeSpan.FromMilliseconds(100) && waited < Bound + TimeSpan.FromSeconds(3), $"refused after {waited}, the bound is {Bound}");
        Assert.True(_commits.Held(clientId).IsCompleted, "the session's Connect never reached its ownership commit: the late completion was not exercised");

        // The session's Connect now completes, after the gateway gave up: the connection it took is closed, so the
        // session ends it as lost: not connected, its expiry counting, the will out.
        _commits.Release(clientId);
        var session = _broker.Grains.GetGrain<IClientSessionGrain>(clientId);
        await InProcessBroker.WaitUntilAsync(async () => await session.Describe() is { Connected: false, DisconnectedAtUtc: not null }, "the session ends the refused connection");
        await InProcessBroker.WaitUntilAsync(() => Task.FromResult(wills.Contains(willTopic)), "the refused connection's will is published");
    }

    [Fact]
    public async Task The_clients_retry_after_a_refused_connect_gets_the_session_and_keeps_it()
    {
        var clientId = "retry-" + Guid.NewGuid().ToString("N")[..8];
        _commits.Hold(clientId);
        using (var first = new MqttClientFactory().CreateMqttClient())
        {
            var refused = await first.ConnectAsync(_broker.Options(clientId, MqttProtocolVersion.V500, cleanStart: false));
            Assert.Equal(MqttClientConnectResultCode.ServerUnavailable, refused.ResultCode);
        }

        var abandonedBefore = _broker.Count();
        _commits.Release(clientId);
        using var client = await _broker.ConnectAsync(clientId, MqttProtocolVersion.V500, cleanStart: false);
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.ApplicationMessageReceivedAsync += e =>
        {
            received.TrySetResult(e.ApplicationMessage.ConvertPayloadToString());
            return Task.CompletedTask;
        };

        // The refused connection's end reached the session (before or after the retry took it over): it must not
        // have ended the retry's connection.
        await InProcessBroker.WaitUntilAsync(() => Task.FromResult(_broker.Count() > abandonedBefore), "the gateway told the session the refused connection is gone");
        var details = await _broker.Grains.GetGrain<IClientSessionGrain>(clientId).Describe();
        Assert.True(details is { Connected: true }, "the retry's connection lost the session to the refused one's end");
        Assert.True(client.IsConnected);

        await client.SubscribeAsync("retry/" + clientId, MqttQualityOfServiceLevel.AtLeastOnce);
        await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("retry/" + clientId).WithPayload("after retry")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal("after retry", await received.Task.WaitAsync(Patience));
    }

    [Fact]
    public async Task A_takeover_the_gateway_gave_up_on_before_the_older_connection_was_told_leaves_the_older_connection_the_session()
    {
        var clientId = "keep-" + Guid.NewGuid().ToString("N")[..8];
        var topic = "keep/" + clientId;
        using var older = await _broker.ConnectAsync(clientId, MqttProtocolVersion.V500, cleanStart: false);
        var olderClosed = new TaskCompletionSource<MqttClientDisconnectedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        older.DisconnectedAsync += e =>
        {
            olderClosed.TrySetResult(e);
            return Task.CompletedTask;
        };
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        older.ApplicationMessageReceivedAsync += e =>
        {
            received.TrySetResult(e.ApplicationMessage.ConvertPayloadToString());
            return Task.CompletedTask;
        };
        await older.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);

        // The newer connection's ownership commit is held past the gateway's bound: the gateway refuses it and cancels
        // the Connect while it runs, before it told the older connection.
        _commits.Hold(clientId);
        var abandonedBefore = _broker.Count();
        using (var newer = new MqttClientFactory().CreateMqttClient())
        {
            var refused = await newer.ConnectAsync(_broker.Options(clientId, MqttProtocolVersion.V500, cleanStart: false));
            Assert.Equal(MqttClientConnectResultCode.ServerUnavailable, refused.ResultCode);
        }

        Assert.True(_commits.Held(clientId).IsCompleted, "the newer Connect never reached its ownership commit: the takeover was not exercised");
        _commits.Release(clientId);

        // The gateway's Disconnect of the refused connection waits at the session behind the Connect: once it has run,
        // the Connect is over.
        await InProcessBroker.WaitUntilAsync(() => Task.FromResult(_broker.Count() > abandonedBefore), "the abandoned Connect and the gateway's Disconnect of it ran");
        if (olderClosed.Task.IsCompleted)
        {
            var closed = await olderClosed.Task;
            Assert.Fail($"the older connection was closed ({closed.Reason}): the abandoned Connect took the session over");
        }
        Assert.True(older.IsConnected);
        var details = await _broker.Grains.GetGrain<IClientSessionGrain>(clientId).Describe();
        Assert.True(details is { Connected: true }, "the session does not count the older connection as connected");

        using var publisher = await _broker.ConnectAsync("pub-" + clientId, MqttProtocolVersion.V500, cleanStart: true);
        await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("still yours")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal("still yours", await received.Task.WaitAsync(Patience));
    }

    /// <summary>The in-memory ownership store, with the first commit of chosen client ids held until released.</summary>
    private sealed class HeldCommits : ISessionOwnershipStore
    {
        private readonly InMemorySessionOwnershipStore _inner = new();
        private readonly ConcurrentDictionary<string, (TaskCompletionSource Reached, TaskCompletionSource Release)> _held = new();

        public void Hold(string clientId) =>
            _held[clientId] = (new(TaskCreationOptions.RunContinuationsAsynchronously), new(TaskCreationOptions.RunContinuationsAsynchronously));

        public Task Held(string clientId) => _held[clientId].Reached.Task;

        public void Release(string clientId) => _held[clientId].Release.TrySetResult();

        public void ReleaseAll()
        {
            foreach (var held in _held.Values)
            {
                held.Release.TrySetResult();
            }
        }

        public async ValueTask<OwnershipCommit> CommitAsync(string clientId, SessionOwner owner, long expectedRevision, CancellationToken cancellationToken = default)
        {
            // Only the first commit of a held client id waits: the retry's commit goes through once it is released.
            if (_held.TryGetValue(clientId, out var held) && held.Reached.TrySetResult())
            {
                await held.Release.Task;
            }

            return await _inner.CommitAsync(clientId, owner, expectedRevision, cancellationToken);
        }

        public ValueTask<OwnershipCommit> ReleaseAsync(string clientId, long expectedRevision, CancellationToken cancellationToken = default) =>
            _inner.ReleaseAsync(clientId, expectedRevision, cancellationToken);

        public ValueTask<(SessionOwner? Owner, long Revision)> ReadAsync(string clientId, CancellationToken cancellationToken = default) =>
            _inner.ReadAsync(clientId, cancellationToken);
    }
}
