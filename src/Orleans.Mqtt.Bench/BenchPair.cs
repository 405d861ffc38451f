using System.Buffers;
using System.Diagnostics;
using MQTTnet;
using MQTTnet.Protocol;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// One publisher/subscriber pair: the two clients, the publisher's closed- or open-loop send
/// loop and the subscriber's accounting of what arrived.
/// </summary>
internal sealed class BenchPair
{
    // How long a QoS 0 publisher waits for its window to drain before it assumes messages were
    // lost and sends anyway; without it a single lost message would shrink the window for good.
    private static readonly TimeSpan StallTimeout = TimeSpan.FromSeconds(1);
    private static readonly double NanosPerTick = 1_000_000_000.0 / Stopwatch.Frequency;
    private static readonly ReadBufferedStreamProvider StreamProvider = new(64 * 1024);

    private readonly BenchOptions _options;
    private readonly RunState _state;
    private readonly MqttQualityOfServiceLevel _qos;
    private readonly SemaphoreSlim _credits;
    private readonly Stack<byte[]> _freeBuffers = new();
    private readonly Lock _buffersLock = new();
    private readonly DeliveryTracker _tracker = new();
    private readonly LatencyHistogram _latency = new();
    private IMqttClient? _publisher;
    private IMqttClient? _subscriber;
    private long _published;
    private long _publishErrors;
    private long _stalls;
    private long _malformed;

    /// <summary>Creates the pair; clients are created by <see cref="ConnectAsync"/>.</summary>
    public BenchPair(int index, string topic, BenchOptions options, RunState state)
    {
        Index = index;
        Topic = topic;
        _options = options;
        _state = state;
        _qos = options.Qos;
        _credits = new SemaphoreSlim(options.Window);
        for (var i = 0; i < options.Window; i++)
        {
            var buffer = new byte[options.Size];
            buffer.AsSpan().Fill((byte)'.');
            _freeBuffers.Push(buffer);
        }
    }

    /// <summary>Index of the pair, carried in every payload.</summary>
    public int Index { get; }

    /// <summary>The topic this pair publishes on and subscribes to.</summary>
    public string Topic { get; }

    /// <summary>True once both clients are connected and the subscription is in place.</summary>
    public bool Ready { get; private set; }

    /// <summary>Publishes accepted: acknowledged at QoS 1/2, written to the connection at QoS 0.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Publishes that failed or were refused.</summary>
    public long PublishErrors => Interlocked.Read(ref _publishErrors);

    /// <summary>Times the QoS 0 publisher gave up waiting for deliveries and sent anyway.</summary>
    public long Stalls => Interlocked.Read(ref _stalls);

    /// <summary>Deliveries whose payload was not this pair's bench payload.</summary>
    public long Malformed => Interlocked.Read(ref _malformed);

    /// <summary>Sequence accounting of the subscriber side.</summary>
    public DeliveryTracker Tracker => _tracker;

    /// <summary>Latency of deliveries of messages sent in the measured interval, in nanoseconds; read it only after the run.</summary>
    public LatencyHistogram Latency => _latency;

    /// <summary>Connects the subscriber, subscribes, then connects the publisher. Failures are reported, not thrown.</summary>
    public async Task ConnectAsync(MqttClientFactory factory, string clientIdPrefix, CancellationToken cancellationToken)
    {
        _subscriber = factory.CreateMqttClient();
        _subscriber.ApplicationMessageReceivedAsync += OnMessageAsync;
        _subscriber.DisconnectedAsync += OnDisconnectedAsync;
        _publisher = factory.CreateMqttClient();
        _publisher.DisconnectedAsync += OnDisconnectedAsync;

        try
        {
            await _subscriber.ConnectAsync(ClientOptions(clientIdPrefix + "-s" + Index), cancellationToken).ConfigureAwait(false);
            var subscribe = factory.CreateSubscribeOptionsBuilder().WithTopicFilter(Topic, _qos).Build();
            var result = await _subscriber.SubscribeAsync(subscribe, cancellationToken).ConfigureAwait(false);
            foreach (var item in result.Items)
            {
                if (item.ResultCode > MqttClientSubscribeResultCode.GrantedQoS2)
                {
                    _state.OnConnectError($"subscribe {Topic} refused: {item.ResultCode}");
                    return;
                }

                if ((int)item.ResultCode < (int)_qos)
                {
                    _state.Report($"subscribe {Topic} granted {item.ResultCode} only");
                }
            }
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            _state.OnConnectError($"subscriber: {exception.GetType().Name}: {exception.Message}");
            return;
        }

        try
        {
            await _publisher.ConnectAsync(ClientOptions(clientIdPrefix + "-p" + Index), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            _state.OnConnectError($"publisher: {exception.GetType().Name}: {exception.Message}");
            return;
        }

        Ready = true;
    }

    /// <summary>
    /// Publishes until <paramref name="stop"/> fires or the publisher is dropped. Closed loop keeps
    /// <see cref="BenchOptions.Window"/> messages outstanding; with <paramref name="ticksPerMessage"/>
    /// above 0 messages are also scheduled at that interval from <paramref name="startTicks"/> and
    /// stamped with their scheduled time, so a tool or broker that falls behind shows up as latency.
    /// </summary>
    public async Task PublishLoopAsync(long startTicks, double ticksPerMessage, CancellationToken stop)
    {
        var client = _publisher!;
        var message = new MqttApplicationMessage { Topic = Topic, QualityOfServiceLevel = _qos };
        long sequence = 0;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var timestamp = 0L;
                if (ticksPerMessage > 0)
                {
                    timestamp = startTicks + (long)(sequence * ticksPerMessage);
                    var wait = timestamp - Stopwatch.GetTimestamp();
                    if (wait > 0)
                    {
                        // Timers tick in whole milliseconds: sleep at least one and send what fell due.
                        var millis = Math.Max(1, (int)(wait * 1000 / Stopwatch.Frequency));
                        await Task.Delay(millis, stop).ConfigureAwait(false);
                    }
                }

                if (!await AcquireCreditAsync(client, stop).ConfigureAwait(false))
                {
                    break;
                }

                var buffer = RentBuffer();
                if (timestamp == 0)
                {
                    timestamp = Stopwatch.GetTimestamp();
                }

                new PayloadHeader(Index, sequence, timestamp).WriteTo(buffer);
                message.Payload = new ReadOnlySequence<byte>(buffer);
                sequence++;

                if (_qos == MqttQualityOfServiceLevel.AtMostOnce)
                {
                    // Awaiting keeps the wire order; the window is enforced by deliveries.
                    try
                    {
                        await client.PublishAsync(message, CancellationToken.None).ConfigureAwait(false);
                        Interlocked.Increment(ref _published);
                    }
                    catch (Exception exception)
                    {
                        OnPublishError(exception);
                        _credits.Release();
                        if (!client.IsConnected)
                        {
                            break;
                        }
                    }
                    finally
                    {
                        ReturnBuffer(buffer);
                    }

                    continue;
                }

                // Starting the publishes from this one loop keeps them in sequence order on the
                // wire (the client sends under a FIFO lock); completions return the credit.
                Task<MqttClientPublishResult> publish;
                try
                {
                    publish = client.PublishAsync(message, CancellationToken.None);
                }
                catch (Exception exception)
                {
                    OnPublishError(exception);
                    ReturnBuffer(buffer);
                    _credits.Release();
                    if (!client.IsConnected)
                    {
                        break;
                    }

                    continue;
                }

                _ = CompletePublishAsync(publish, buffer);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>Waits until no QoS 1/2 publish is awaiting its acknowledgement; false on timeout.</summary>
    public async Task<bool> WaitForInFlightAsync(TimeSpan timeout)
    {
        if (_qos == MqttQualityOfServiceLevel.AtMostOnce || !Ready)
        {
            return true;
        }

        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var taken = 0;
        try
        {
            for (; taken < _options.Window; taken++)
            {
                var left = Math.Max(0, deadline - Stopwatch.GetTimestamp());
                if (!await _credits.WaitAsync(TimeSpan.FromSeconds(left / (double)Stopwatch.Frequency)).ConfigureAwait(false))
                {
                    return false;
                }
            }

            return true;
        }
        finally
        {
            if (taken > 0)
            {
                _credits.Release(taken);
            }
        }
    }

    /// <summary>Disconnects both clients, ignoring errors, and disposes them.</summary>
    public async Task DisconnectAsync(MqttClientFactory factory, TimeSpan timeout)
    {
        foreach (var client in new[] { _publisher, _subscriber })
        {
            if (client is null)
            {
                continue;
            }

            try
            {
                if (client.IsConnected)
                {
                    using var cts = new CancellationTokenSource(timeout);
                    await client.DisconnectAsync(factory.CreateClientDisconnectOptionsBuilder().Build(), cts.Token).ConfigureAwait(false);
                }
            }
            catch (Exception)
            {
                // Best effort: the run is over and its numbers are already taken.
            }
            finally
            {
                client.Dispose();
            }
        }
    }

    private MqttClientOptions ClientOptions(string clientId)
    {
        return new MqttClientOptionsBuilder()
            .WithTcpServer(_options.Host, _options.Port)
            .WithStreamProvider(StreamProvider)
            .WithClientId(clientId)
            .WithProtocolVersion(_options.Protocol)
            .WithCleanSession()
            .WithTimeout(_options.ConnectTimeout)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(30))
            // One write per packet instead of header and payload separately.
            .WithoutPacketFragmentation()
            .Build();
    }

    private async ValueTask<bool> AcquireCreditAsync(IMqttClient client, CancellationToken stop)
    {
        while (true)
        {
            if (await _credits.WaitAsync(StallTimeout, stop).ConfigureAwait(false))
            {
                return true;
            }

            if (!client.IsConnected)
            {
                return false;
            }

            if (_qos == MqttQualityOfServiceLevel.AtMostOnce)
            {
                Interlocked.Increment(ref _stalls);
                return true;
            }
        }
    }

    private async Task CompletePublishAsync(Task<MqttClientPublishResult> publish, byte[] buffer)
    {
        try
        {
            var result = await publish.ConfigureAwait(false);
            if (result.IsSuccess)
            {
                Interlocked.Increment(ref _published);
            }
            else
            {
                Interlocked.Increment(ref _publishErrors);
                _state.Report($"publish refused: {result.ReasonCode} {result.ReasonString}");
            }
        }
        catch (Exception exception)
        {
            OnPublishError(exception);
        }
        finally
        {
            ReturnBuffer(buffer);
            _credits.Release();
        }
    }

    private Task OnMessageAsync(MqttApplicationMessageReceivedEventArgs eventArgs)
    {
        // Runs on the subscriber's receive loop, one message at a time: keep it short.
        var now = Stopwatch.GetTimestamp();
        if (!PayloadHeader.TryRead(eventArgs.ApplicationMessage.Payload, out var header) || header.Pair != Index)
        {
            Interlocked.Increment(ref _malformed);
            return Task.CompletedTask;
        }

        var outcome = _tracker.Record(header.Sequence);
        if (outcome is DeliveryOutcome.InOrder or DeliveryOutcome.OutOfOrder)
        {
            if (header.Timestamp >= _state.MeasureStartTicks)
            {
                _latency.Record((long)((now - header.Timestamp) * NanosPerTick));
            }

            if (_qos == MqttQualityOfServiceLevel.AtMostOnce)
            {
                _credits.Release();
            }
        }

        return Task.CompletedTask;
    }

    private Task OnDisconnectedAsync(MqttClientDisconnectedEventArgs eventArgs)
    {
        if (eventArgs.ClientWasConnected && !_state.Closing)
        {
            var detail = eventArgs.Exception?.Message ?? eventArgs.ReasonString ?? "";
            _state.OnDropped($"pair {Index}: {eventArgs.Reason} {detail}".TrimEnd());
        }

        return Task.CompletedTask;
    }

    private void OnPublishError(Exception exception)
    {
        Interlocked.Increment(ref _publishErrors);
        _state.Report($"publish: {exception.GetType().Name}: {exception.Message}");
    }

    private byte[] RentBuffer()
    {
        // A credit was taken, so a buffer is free: there are as many buffers as credits.
        lock (_buffersLock)
        {
            return _freeBuffers.Count > 0 ? _freeBuffers.Pop() : NewBuffer();
        }
    }

    private void ReturnBuffer(byte[] buffer)
    {
        lock (_buffersLock)
        {
            _freeBuffers.Push(buffer);
        }
    }

    private byte[] NewBuffer()
    {
        // Only after a QoS 0 stall, when more than a window is outstanding.
        var buffer = new byte[_options.Size];
        buffer.AsSpan().Fill((byte)'.');
        return buffer;
    }
}
