using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using MQTTnet.Formatter;
using Orleans.Mqtt.Fuzzing;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// The fuzz scenario: socket-level fuzzing of one broker while a well-behaved client uses it. Each of
/// <see cref="BenchOptions.Concurrency"/> lanes opens connection after connection and sends mutated packets of
/// both MQTT versions (<see cref="MqttFuzzPackets"/>): a mutated CONNECT as a connection's only packet, or, after a
/// valid CONNECT, mutated packets of every type, each followed by a PINGREQ, until the broker closes the
/// connection. A packet is accepted when the PINGRESP behind it arrives; an accepted packet in which the
/// oracle (<see cref="MqttFuzzPackets.ForbiddenAfterDecoding"/>) finds something the specification forbids is a
/// failure. Meanwhile a subscriber and a publisher exchange QoS 1 messages, one at a time, at <c>--rate</c>.
/// </summary>
internal sealed class FuzzScenario(BenchOptions options, TextWriter log)
{
    private const int MaxSamples = 10;
    private const int MaxConsecutiveConnectErrors = 50;
    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan RssInterval = TimeSpan.FromMilliseconds(100);

    private readonly RunState _state = new(log);
    private readonly Lock _lock = new();
    private readonly Dictionary<string, long> _closeReasons = [];
    private readonly List<string> _acceptedForbidden = [];
    private long _nextPacket;
    private long _answered;
    private long _closed;
    private long _noAnswer;
    private long _connections;
    private long _acceptedForbiddenCount;
    private long _steadySent;
    private long _steadyReceived;
    private long _steadyLost;
    private long _rssPeak;

    /// <summary>Runs the fuzz lanes and the steady client; cancelling stops early and still produces a result.</summary>
    public async Task<BenchResult> RunAsync(CancellationToken cancellationToken)
    {
        var runId = options.RunId ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var topic = $"{options.Topic ?? $"bench/{runId}"}/steady";
        var endpoints = await Endpoints.ResolveAsync(options, cancellationToken).ConfigureAwait(false);
        var broker = endpoints.Broker(0);
        var pids = options.BrokerPids;
        var rssBefore = ProcessMemory.RssBytes(pids);
        _rssPeak = rssBefore;
        log.WriteLine(
            $"run {runId} fuzz: {options.FuzzPackets:N0} mutated packets (seed {options.FuzzSeed}) over {options.Concurrency} lanes to {broker}, " +
            $"a steady QoS 1 publisher and subscriber (MQTT {options.ProtocolName}) at {options.Rate:N0} msg/s on {topic}");

        var subscriber = new RouteClient(0, "steady subscriber", options, _state);
        var publisher = new RouteClient(0, "steady publisher", options, _state);
        var steadyReady = await ConnectSteadyAsync(subscriber, publisher, runId, topic, broker, endpoints, cancellationToken).ConfigureAwait(false);

        using var stopBackground = new CancellationTokenSource();
        var start = Stopwatch.GetTimestamp();
        var sampler = SampleRssAsync(pids, stopBackground.Token);
        var steady = steadyReady ? RunSteadyAsync(subscriber, publisher, topic, stopBackground.Token) : Task.CompletedTask;
        var progress = ReportProgressAsync(stopBackground.Token);
        var lanes = new Task[options.Concurrency];
        for (var i = 0; i < lanes.Length; i++)
        {
            var lane = i;
            lanes[i] = Task.Run(() => RunLaneAsync(lane, runId, endpoints, cancellationToken), CancellationToken.None);
        }

        await Task.WhenAll(lanes).ConfigureAwait(false);
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        await stopBackground.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(sampler, steady, progress).ConfigureAwait(false);

        _state.Closing = true;
        await subscriber.CloseAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        await publisher.CloseAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        var brokerAlive = pids.Count == 0 || pids.All(pid => Directory.Exists($"/proc/{pid}"));
        var rssAfter = 0L;
        if (pids.Count > 0 && brokerAlive)
        {
            // A measurement delay, not a synchronisation: the broker's heap trimmer returns memory once the heap stopped growing.
            log.WriteLine($"settling {options.Settle.TotalSeconds:F0} s before the last RSS sample");
            await Task.Delay(options.Settle, CancellationToken.None).ConfigureAwait(false);
            rssAfter = ProcessMemory.RssBytes(pids);
        }

        return BuildResult(runId, steadyReady, brokerAlive, seconds, rssBefore, rssAfter);
    }

    /// <summary>The label a connection's close is counted under: the MQTT 5 DISCONNECT or CONNACK reason, or how it ended without either.</summary>
    public static string CloseLabel(MqttProtocolVersion version, byte? connAckReason, byte? disconnectReason) => (version, connAckReason, disconnectReason) switch
    {
        (_, _, { } reason) => $"DISCONNECT 0x{reason:X2}",
        (_, >= 0x80 or (> 0 and < 6), _) => $"CONNACK 0x{connAckReason:X2}",
        (MqttProtocolVersion.V500, _, _) => "MQTT 5 closed without DISCONNECT",
        _ => "MQTT 3.1.1 closed",
    };

    private async Task<bool> ConnectSteadyAsync(
        RouteClient subscriber, RouteClient publisher, string runId, string topic, IPEndPoint broker, Endpoints endpoints, CancellationToken cancellationToken)
    {
        try
        {
            foreach (var (client, id, index) in new[] { (subscriber, "s", 0), (publisher, "p", 1) })
            {
                var connect = MqttWire.Connect(options.ProtocolLevel, $"bench-{runId}-steady-{id}", true, 0, options.KeepAlive, options.UserName, options.Password);
                var reason = await client.ConnectAsync(broker, endpoints.Source(index), connect, options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
                if (reason != 0)
                {
                    _state.OnConnectError($"{client.Name}: CONNACK 0x{reason:X2}");
                    return false;
                }
            }

            var subAck = await subscriber.SubscribeAsync(topic, 1, options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
            if (subAck != 1)
            {
                _state.OnConnectError($"{subscriber.Name}: SUBACK 0x{subAck:X2}");
                return false;
            }

            return true;
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            _state.OnConnectError($"steady client: {exception.GetType().Name}: {exception.Message}");
            return false;
        }
    }

    // One QoS 1 message at a time: armed subscriber, publish, PUBACK, delivery within the timeout or lost.
    private async Task RunSteadyAsync(RouteClient subscriber, RouteClient publisher, string topic, CancellationToken stop)
    {
        using var pace = new PeriodicTimer(TimeSpan.FromSeconds(1 / options.Rate));
        long sequence = 0;
        try
        {
            while (await pace.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                var delivered = subscriber.ExpectDelivery(sequence);
                Interlocked.Increment(ref _steadySent);
                try
                {
                    var (reason, _) = await publisher.PublishAsync(topic, sequence, retain: false, options.ConnectTimeout, CancellationToken.None).ConfigureAwait(false);
                    if (reason >= 0x80)
                    {
                        _state.Report($"steady publish {sequence} refused: 0x{reason:X2}");
                    }

                    await delivered.WaitAsync(options.ConnectTimeout, CancellationToken.None).ConfigureAwait(false);
                    Interlocked.Increment(ref _steadyReceived);
                }
                catch (Exception exception) when (exception is TimeoutException or IOException)
                {
                    Interlocked.Increment(ref _steadyLost);
                    _state.Report($"steady message {sequence}: {exception.GetType().Name}: {exception.Message}");
                    if (!subscriber.IsConnected || !publisher.IsConnected)
                    {
                        return;
                    }
                }

                sequence++;
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private async Task RunLaneAsync(int lane, string runId, Endpoints endpoints, CancellationToken cancellationToken)
    {
        var random = new Random(options.FuzzSeed + lane);
        var connectErrors = 0;
        while (!cancellationToken.IsCancellationRequested && Volatile.Read(ref _nextPacket) < options.FuzzPackets)
        {
            var version = random.Next(2) == 0 ? MqttProtocolVersion.V311 : MqttProtocolVersion.V500;
            var connectionIndex = Interlocked.Increment(ref _connections);
            FuzzConnection connection;
            try
            {
                connection = await FuzzConnection.OpenAsync(endpoints.Broker(0), endpoints.Source((int)(connectionIndex % int.MaxValue)), options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
                connectErrors = 0;
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                _state.OnConnectError($"{exception.GetType().Name}: {exception.Message}");
                if (++connectErrors >= MaxConsecutiveConnectErrors)
                {
                    _state.Report($"lane {lane}: {connectErrors} connects in a row failed; the lane stops");
                    return;
                }

                continue;
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await using (connection.ConfigureAwait(false))
            {
                await FuzzConnectionAsync(connection, random, version, $"fz-{runId}-{connectionIndex}", cancellationToken).ConfigureAwait(false);
            }
        }
    }

    // A mutated CONNECT alone, or a valid CONNECT and then mutated packets until the broker closes the connection.
    private async Task FuzzConnectionAsync(FuzzConnection connection, Random random, MqttProtocolVersion version, string clientId, CancellationToken cancellationToken)
    {
        if (random.Next(MqttFuzzPackets.PacketKinds) == MqttFuzzPackets.ConnectKind)
        {
            await SendMutatedAsync(connection, random, version, MqttFuzzPackets.ConnectKind, cancellationToken).ConfigureAwait(false);
            return;
        }

        var level = version == MqttProtocolVersion.V500 ? MqttWire.Version5 : MqttWire.Version311;
        try
        {
            var reason = await connection.ConnectAsync(MqttWire.Connect(level, clientId, true, 0, 0, null, null), options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
            if (reason != 0)
            {
                _state.OnConnectError($"valid CONNECT answered {(reason is null ? "by a close" : $"CONNACK 0x{reason:X2}")}");
                return;
            }
        }
        catch (Exception exception) when (exception is IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            _state.OnConnectError($"valid CONNECT: {exception.GetType().Name}: {exception.Message}");
            return;
        }

        while (!cancellationToken.IsCancellationRequested
            && await SendMutatedAsync(connection, random, version, random.Next(MqttFuzzPackets.PacketKinds), cancellationToken).ConfigureAwait(false))
        {
        }
    }

    // Sends one mutated packet of kind with a PINGREQ behind it and counts the answer; false once the connection is over.
    private async Task<bool> SendMutatedAsync(FuzzConnection connection, Random random, MqttProtocolVersion version, int kind, CancellationToken cancellationToken)
    {
        var (header, body) = MqttFuzzPackets.Split(MqttFuzzPackets.Encode(MqttFuzzPackets.Generate(random, version, kind), version));
        var (mutatedHeader, mutatedBody) = MqttFuzzPackets.Mutate(random, header, body);
        if (Interlocked.Increment(ref _nextPacket) > options.FuzzPackets)
        {
            return false;
        }

        var answer = await connection.SendWithPingAsync(MqttFuzzPackets.Frame(mutatedHeader, mutatedBody), AnswerTimeout, cancellationToken).ConfigureAwait(false);
        switch (answer)
        {
            case FuzzAnswer.Answered:
                Interlocked.Increment(ref _answered);
                if (MqttFuzzPackets.ForbiddenAfterDecoding(mutatedHeader, mutatedBody, version) is { } forbidden)
                {
                    Interlocked.Increment(ref _acceptedForbiddenCount);
                    var sample = $"{version} {mutatedHeader:X2} {Convert.ToHexString(mutatedBody)}: {forbidden}";
                    lock (_lock)
                    {
                        if (_acceptedForbidden.Count < MaxSamples)
                        {
                            _acceptedForbidden.Add(sample);
                            log.WriteLine("accepted, must have been refused: " + sample);
                        }
                    }
                }

                return kind != MqttFuzzPackets.ConnectKind;
            case FuzzAnswer.Closed:
                Interlocked.Increment(ref _closed);
                var label = CloseLabel(version, connection.ConnAckReason, connection.DisconnectReason);
                lock (_lock)
                {
                    _closeReasons[label] = _closeReasons.GetValueOrDefault(label) + 1;
                }

                return false;
            default:
                Interlocked.Increment(ref _noAnswer);
                _state.Report($"no answer within {AnswerTimeout.TotalSeconds:F0} s to {version} {mutatedHeader:X2} {Convert.ToHexString(mutatedBody)}");
                return false;
        }
    }

    private async Task SampleRssAsync(IReadOnlyList<int> pids, CancellationToken stop)
    {
        if (pids.Count == 0)
        {
            return;
        }

        using var timer = new PeriodicTimer(RssInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                _rssPeak = Math.Max(_rssPeak, ProcessMemory.RssBytes(pids));
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private async Task ReportProgressAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(10));
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                log.WriteLine(
                    $"  {Math.Min(Volatile.Read(ref _nextPacket), options.FuzzPackets):N0} packets, {Volatile.Read(ref _connections):N0} connections, " +
                    $"{Volatile.Read(ref _closed):N0} closed by the broker; steady {Volatile.Read(ref _steadyReceived):N0}/{Volatile.Read(ref _steadySent):N0}");
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private BenchResult BuildResult(string runId, bool steadyReady, bool brokerAlive, double seconds, long rssBefore, long rssAfter)
    {
        var sent = _answered + _closed + _noAnswer;
        var steadyLost = _steadyLost + (steadyReady ? 0 : 1);
        var fuzz = new FuzzResult
        {
            Requested = options.FuzzPackets,
            Seed = options.FuzzSeed,
            Lanes = options.Concurrency,
            Sent = sent,
            Connections = _connections,
            Answered = _answered,
            Closed = _closed,
            NoAnswer = _noAnswer,
            CloseReasons = new SortedDictionary<string, long>(_closeReasons, StringComparer.Ordinal),
            AcceptedForbidden = _acceptedForbiddenCount,
            AcceptedForbiddenSamples = [.. _acceptedForbidden],
            Seconds = seconds,
            SteadySent = _steadySent,
            SteadyReceived = _steadyReceived,
            SteadyLost = steadyLost,
            BrokerAlive = brokerAlive,
            BrokerRssBefore = rssBefore,
            BrokerRssPeak = _rssPeak,
            BrokerRssAfter = rssAfter,
            SettleSeconds = options.Settle.TotalSeconds,
        };
        var failed = fuzz.AcceptedForbidden > 0 || steadyLost > 0 || !brokerAlive || sent < options.FuzzPackets;
        return new BenchResult
        {
            Scenario = "fuzz",
            RunId = runId,
            Broker = string.Join(",", options.Hosts),
            Protocol = "311+5",
            Qos = 1,
            Rate = options.Rate,
            Fuzz = fuzz,
            ConnectErrors = _state.ConnectErrors,
            Disconnects = _state.Disconnects,
            ExitCode = failed ? 5 : 0,
            Errors = _state.ErrorSamples,
        };
    }
}
