using System.Globalization;

namespace Orleans.Mqtt.Bench;

/// <summary>Settings of one bench run, parsed from the command line.</summary>
internal sealed class BenchOptions
{
    /// <summary>The usage text printed for <c>--help</c> and after a bad argument.</summary>
    public const string Usage = """
        usage: Orleans.Mqtt.Bench <scenario> [options]

        scenarios
          p2p (alias pairs)  N publisher/subscriber pairs: pair i publishes on <topic>/i, its subscriber
                             subscribes that topic                                  (--pairs, default 50)
          pub                publishers only, publisher i on <topic>/i            (--publishers, default 10)
          sub                subscribers only, each subscribing <topic>/+; counts what a pub run with the
                             same --topic sends (loss = gaps in each publisher's sequence)
                                                                                  (--subscribers, default 1)
          fanout             publishers on one topic, every subscriber gets every message
                                                      (--publishers, default 1; --subscribers, default 100)
          fanin              publisher i on <topic>/i, one shared subscription $share/<group>/<topic>/+
                             with K members; loss and duplicates counted over the group
                                                      (--publishers, default 100; --subscribers, default 4)
          conn               N idle connections opened at --connect-rate, held for --duration
                                                                              (--connections, default 1000)
          subroute           SUBACK means routable: per trial, subscribe (QoS 1) to a fresh topic on one
                             endpoint and, at its SUBACK, publish one QoS 1 message to it on the next
                             endpoint of --host; reports SUBACK->delivered and SUBSCRIBE->SUBACK latency
                             and misses (no delivery within --trial-timeout)
          fuzz               socket-level fuzzing: --concurrency lanes send --packets mutated packets of
                             both MQTT versions and every type (a mutated CONNECT alone, or others after a
                             valid CONNECT, each followed by PINGREQ, until the broker closes); counts the
                             broker's closes by reason and the accepted packets (PINGRESP came back) that
                             the shared oracle finds forbidden, while a steady QoS 1 publisher and
                             subscriber exchange messages at --rate (default 100 msg/s)

        connection
          --host <h[:p],...>        brokers, connections spread round robin (default 127.0.0.1)
          --port <n>                port of hosts given without one (default 1883)
          --protocol <5|311>        MQTT protocol version (default 5)
          --username <u>            user name (and --password <p>)
          --keepalive <s>           keep alive; the tool pings every half of it (default 60)
          --session-expiry <s>      above 0: clean start off and this session expiry (persistent
                                    sessions); 0: clean start (default 0)
          --source <auto|none>      auto: bind connections to 127.0.0.1..254 in turn when every
                                    host is a loopback address (default auto)
          --connect-timeout <s>     connect, subscribe and acknowledgement timeout (default 10)

        messages (p2p, pub, sub, fanout, fanin)
          --qos <0|1|2>             QoS of publishes and subscriptions (default 1)
          --size <bytes>            payload size, at least 32 (default 100)
          --topic <prefix>          topic prefix (default bench/<run-id>)
          --group <name>            fanin: shared subscription group (default g)
          --window <n>              messages in flight per publisher (default 10): not yet acknowledged
                                    (QoS 1/2) and not yet delivered to this run's subscribers
          --rate <msg/s>            cap on the total publish rate, 0 = closed loop (default 0)
          --warmup <s>              warm-up before measuring (default 3)
          --duration <s>            measured interval (default 20); conn: how long to hold

        conn
          --connect-rate <n/s>      target connect rate, 0 = as fast as --inflight allows (default 1000)
          --inflight <n>            connects in progress at once (default 100)
          --subscriptions <n>       subscriptions per connection, QoS 1 (default 0)
          --filter-pattern <p>      the filters: {prefix} = --topic, {c} = connection index in the run,
                                    {i} = subscription index in the connection, {n} = c x n + i;
                                    wildcards allowed (default {prefix}/c/{c}, or {prefix}/c/{c}/{i}
                                    with more than one subscription)
          --subscribe-batch <n>     filters per SUBSCRIBE packet (default 1)
          --check <n>               route check once every connection is up: publish QoS 1 to a topic
                                    of n sampled filters (wildcard levels as x) from a connection on the
                                    next endpoint of --host, and wait for each delivery; a delivery
                                    that does not come within --trial-timeout is a miss (exit code 4)
          --workers <n|auto>        worker processes, each with its share; auto = one per 18,000
                                    connections (default auto)
          --broker-pid <pid,...>    also report the broker processes' RSS growth per connection
                                    (conn) or CPU use in the measured interval (other scenarios)

        subroute
          --trials <n>              trials (default 1000)
          --concurrency <n>         trials at once, each with its own subscriber and publisher
                                    connection, reused for every trial it runs (default 8)
          --trial-timeout <s>       a message not delivered within this is a miss (default 5)
          --retained                publish a retained message first and, at its PUBACK, subscribe;
                                    reports PUBACK->retained delivered (the message is cleared after)

        fuzz
          --packets <n>             mutated packets to send (default 100000)
          --seed <n>                seed of lane 0; lane i uses seed + i (default 20261206)
          --settle <s>              wait before the last broker RSS sample (default 15)
          (also --concurrency, default 8; --rate; --broker-pid for RSS and the crash check)

        output
          --json <path>             also write the result as JSON

        exit codes: 0 ok, 1 bad arguments, 2 connections failed, 3 clients dropped during the run,
                    4 subroute trials or conn route checks missed or failed,
                    5 fuzz: a forbidden packet accepted, a steady message lost, the broker gone
                    or fewer packets sent than asked
        """;

    /// <summary>Connections per worker process when <c>--workers auto</c>: below the 20,000 open files a process may hold.</summary>
    public const int ConnectionsPerWorker = 18_000;

    private static readonly string[] Scenarios = ["p2p", "pairs", "pub", "sub", "fanout", "fanin", "conn", "subroute", "fuzz"];

    /// <summary>Scenario name: p2p (or its alias pairs), pub, sub, fanout, fanin, conn, subroute or fuzz.</summary>
    public string Scenario { get; set; } = "pairs";

    /// <summary>Brokers to connect to, in the order connections are spread over them.</summary>
    public IReadOnlyList<BrokerAddress> Hosts { get; set; } = [new("127.0.0.1", 1883)];

    /// <summary>Port for hosts given without one.</summary>
    public int Port { get; set; } = 1883;

    /// <summary>Publisher/subscriber pairs (p2p).</summary>
    public int Pairs { get; set; } = 50;

    /// <summary>Publishers (pub, fanout, fanin).</summary>
    public int Publishers { get; set; }

    /// <summary>Subscribers (sub, fanout) or shared subscription members (fanin).</summary>
    public int Subscribers { get; set; }

    /// <summary>Connections (conn).</summary>
    public int Connections { get; set; } = 1000;

    /// <summary>QoS used for publishing and subscribing.</summary>
    public int Qos { get; set; } = 1;

    /// <summary>Payload size in bytes, header included.</summary>
    public int Size { get; set; } = 100;

    /// <summary>Topic prefix; null means <c>bench/&lt;run-id&gt;</c>.</summary>
    public string? Topic { get; set; }

    /// <summary>Shared subscription group of fanin.</summary>
    public string Group { get; set; } = "g";

    /// <summary>Length of the measured interval (conn: of the hold).</summary>
    public TimeSpan Duration { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Length of the warm-up before the measured interval.</summary>
    public TimeSpan Warmup { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Messages in flight per publisher.</summary>
    public int Window { get; set; } = 10;

    /// <summary>Cap on the total publish rate in messages per second; 0 means closed loop.</summary>
    public double Rate { get; set; }

    /// <summary>conn: target connects per second; 0 means as fast as <see cref="Inflight"/> allows.</summary>
    public double ConnectRate { get; set; } = 1000;

    /// <summary>conn: connects in progress at once.</summary>
    public int Inflight { get; set; } = 100;

    /// <summary>conn: subscriptions per connection.</summary>
    public int Subscriptions { get; set; }

    /// <summary>conn: the filters' pattern (<see cref="Bench.FilterPattern"/>); null means <see cref="Bench.FilterPattern.Default"/>.</summary>
    public string? FilterPattern { get; set; }

    /// <summary>conn: filters per SUBSCRIBE packet.</summary>
    public int SubscribeBatch { get; set; } = 1;

    /// <summary>conn: sampled filters the route check publishes to once every connection is up; 0 = no check.</summary>
    public int Check { get; set; }

    /// <summary>The filter pattern in effect.</summary>
    public string EffectiveFilterPattern => FilterPattern ?? Bench.FilterPattern.Default(Subscriptions);

    /// <summary>conn: worker processes; 0 means one per <see cref="ConnectionsPerWorker"/> connections.</summary>
    public int Workers { get; set; }

    /// <summary>subroute: trials to run.</summary>
    public int Trials { get; set; } = 1000;

    /// <summary>subroute: trials running at once, each on its own subscriber and publisher connection.</summary>
    public int Concurrency { get; set; } = 8;

    /// <summary>subroute: how long a trial waits for its message before it counts as a miss.</summary>
    public TimeSpan TrialTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>subroute: measure retained delivery (publish retained, subscribe at PUBACK) instead of SUBACK to delivery.</summary>
    public bool Retained { get; set; }

    /// <summary>fuzz: mutated packets to send.</summary>
    public int FuzzPackets { get; set; } = 100_000;

    /// <summary>fuzz: seed of the first lane's packets; lane <c>i</c> uses this plus <c>i</c>.</summary>
    public int FuzzSeed { get; set; } = 20_261_206;

    /// <summary>fuzz: wait after the run before the last broker RSS sample.</summary>
    public TimeSpan Settle { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Broker processes whose RSS growth (conn) or CPU use (other scenarios) is reported.</summary>
    public IReadOnlyList<int> BrokerPids { get; set; } = [];

    /// <summary>Session expiry in seconds; above 0 the tool also connects with clean start off.</summary>
    public uint SessionExpiry { get; set; }

    /// <summary>Keep alive in seconds.</summary>
    public ushort KeepAlive { get; set; } = 60;

    /// <summary>Spread connections over loopback source addresses when every host is a loopback address.</summary>
    public bool SpreadSources { get; set; } = true;

    /// <summary>User name, if any.</summary>
    public string? UserName { get; set; }

    /// <summary>Password, if any.</summary>
    public string? Password { get; set; }

    /// <summary>Where to write the JSON result, if anywhere.</summary>
    public string? JsonPath { get; set; }

    /// <summary>MQTT protocol level byte: 5, or 4 for 3.1.1.</summary>
    public byte ProtocolLevel { get; set; } = MqttWire.Version5;

    /// <summary>Timeout for connecting and for waiting on an acknowledgement.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Run id given by a parent process to its workers; null in a normal run.</summary>
    public string? RunId { get; set; }

    /// <summary>Worker: index of its first connection in the whole run.</summary>
    public int ConnectionOffset { get; set; }

    /// <summary>True in a worker process started by a conn run.</summary>
    public bool IsWorker { get; set; }

    /// <summary>Worker: its index among the run's workers.</summary>
    public int WorkerIndex { get; set; }

    /// <summary>True when <c>--help</c> was given.</summary>
    public bool ShowHelp { get; set; }

    /// <summary>The protocol version as written on the command line (5 or 311).</summary>
    public string ProtocolName => ProtocolLevel == MqttWire.Version5 ? "5" : "311";

    /// <summary>Canonical scenario name (pairs is p2p).</summary>
    public string ScenarioKind => Scenario == "pairs" ? "p2p" : Scenario;

    /// <summary>Worker processes a conn run starts, after <c>auto</c> is resolved.</summary>
    public int WorkerCount => Workers > 0 ? Workers : Math.Max(1, (Connections + ConnectionsPerWorker - 1) / ConnectionsPerWorker);

    /// <summary>Parses the command line; returns false with a message naming the bad argument.</summary>
    public static bool TryParse(IReadOnlyList<string> args, out BenchOptions options, out string? error)
    {
        var parsed = new BenchOptions();
        options = parsed;
        error = null;
        var i = 0;
        if (args.Count > 0 && !args[0].StartsWith('-'))
        {
            parsed.Scenario = args[0];
            i = 1;
        }

        if (Array.IndexOf(Scenarios, parsed.Scenario) < 0)
        {
            error = $"unknown scenario '{parsed.Scenario}' (known: {string.Join(", ", Scenarios)})";
            return false;
        }

        string? hosts = null;
        for (; i < args.Count; i++)
        {
            var name = args[i];
            if (name is "-h" or "--help")
            {
                parsed.ShowHelp = true;
                continue;
            }

            if (name == "--retained")
            {
                parsed.Retained = true;
                continue;
            }

            if (i + 1 >= args.Count)
            {
                error = $"{name} needs a value";
                return false;
            }

            var value = args[++i];
            var ok = name switch
            {
                "--host" => Set(value, v => hosts = v),
                "--port" => TryInt(value, 1, 65535, v => parsed.Port = v),
                "--pairs" => TryInt(value, 1, 100_000, v => parsed.Pairs = v),
                "--publishers" => TryInt(value, 1, 100_000, v => parsed.Publishers = v),
                "--subscribers" => TryInt(value, 1, 100_000, v => parsed.Subscribers = v),
                "--connections" => TryInt(value, 1, 10_000_000, v => parsed.Connections = v),
                "--qos" => TryInt(value, 0, 2, v => parsed.Qos = v),
                "--size" => TryInt(value, PayloadHeader.Size, MqttWire.MaxRemainingLength - 65_536, v => parsed.Size = v),
                "--topic" => TryTopic(value, v => parsed.Topic = v),
                "--group" => TryTopic(value, v => parsed.Group = v),
                "--duration" => TryDouble(value, 0.1, v => parsed.Duration = TimeSpan.FromSeconds(v)),
                "--warmup" => TryDouble(value, 0, v => parsed.Warmup = TimeSpan.FromSeconds(v)),
                "--window" => TryInt(value, 1, 65535, v => parsed.Window = v),
                "--rate" => TryDouble(value, 0, v => parsed.Rate = v),
                "--connect-rate" => TryDouble(value, 0, v => parsed.ConnectRate = v),
                "--inflight" => TryInt(value, 1, 100_000, v => parsed.Inflight = v),
                "--subscriptions" => TryInt(value, 0, 10_000, v => parsed.Subscriptions = v),
                "--filter-pattern" => Set(value, v => parsed.FilterPattern = v),
                "--subscribe-batch" => TryInt(value, 1, 1_000, v => parsed.SubscribeBatch = v),
                "--check" => TryInt(value, 0, 10_000_000, v => parsed.Check = v),
                "--workers" => value == "auto" ? Set(value, _ => parsed.Workers = 0) : TryInt(value, 1, 1000, v => parsed.Workers = v),
                "--broker-pid" => TryPids(value, parsed),
                "--packets" => TryInt(value, 1, int.MaxValue - 1_000_000, v => parsed.FuzzPackets = v),
                "--seed" => TryInt(value, 0, int.MaxValue - 100_000, v => parsed.FuzzSeed = v),
                "--settle" => TryDouble(value, 0, v => parsed.Settle = TimeSpan.FromSeconds(v)),
                "--trials" => TryInt(value, 1, int.MaxValue, v => parsed.Trials = v),
                "--concurrency" => TryInt(value, 1, 10_000, v => parsed.Concurrency = v),
                "--trial-timeout" => TryDouble(value, 0.001, v => parsed.TrialTimeout = TimeSpan.FromSeconds(v)),
                "--session-expiry" => TryInt(value, 0, int.MaxValue, v => parsed.SessionExpiry = (uint)v),
                "--keepalive" => TryInt(value, 0, 65535, v => parsed.KeepAlive = (ushort)v),
                "--source" => value is "auto" or "none" ? Set(value, v => parsed.SpreadSources = v == "auto") : false,
                "--username" => Set(value, v => parsed.UserName = v),
                "--password" => Set(value, v => parsed.Password = v),
                "--json" => Set(value, v => parsed.JsonPath = v),
                "--protocol" => TryProtocol(value, parsed),
                "--connect-timeout" => TryDouble(value, 0.1, v => parsed.ConnectTimeout = TimeSpan.FromSeconds(v)),
                "--run-id" => Set(value, v => parsed.RunId = v),
                "--worker" => TryInt(value, 0, 1000, v => (parsed.IsWorker, parsed.WorkerIndex) = (true, v)),
                "--connection-offset" => TryInt(value, 0, int.MaxValue, v => parsed.ConnectionOffset = v),
                _ => (bool?)null,
            };

            if (ok is null)
            {
                error = $"unknown option {name}";
                return false;
            }

            if (ok == false)
            {
                error = $"invalid value '{value}' for {name}";
                return false;
            }
        }

        if (hosts is not null)
        {
            if (!BrokerAddress.TryParseList(hosts, parsed.Port, out var list))
            {
                error = $"invalid value '{hosts}' for --host (host[:port],...)";
                return false;
            }

            parsed.Hosts = list;
        }
        else
        {
            parsed.Hosts = [new BrokerAddress("127.0.0.1", parsed.Port)];
        }

        switch (parsed.ScenarioKind)
        {
            case "pub":
                parsed.Publishers = parsed.Publishers > 0 ? parsed.Publishers : 10;
                break;
            case "sub":
                parsed.Subscribers = parsed.Subscribers > 0 ? parsed.Subscribers : 1;
                break;
            case "fanout":
                parsed.Publishers = parsed.Publishers > 0 ? parsed.Publishers : 1;
                parsed.Subscribers = parsed.Subscribers > 0 ? parsed.Subscribers : 100;
                break;
            case "fanin":
                parsed.Publishers = parsed.Publishers > 0 ? parsed.Publishers : 100;
                parsed.Subscribers = parsed.Subscribers > 0 ? parsed.Subscribers : 4;
                break;
            case "p2p":
                parsed.Publishers = parsed.Subscribers = parsed.Pairs;
                break;
            case "fuzz":
                parsed.Rate = parsed.Rate > 0 ? parsed.Rate : 100;
                break;
        }

        if (parsed.ScenarioKind == "conn" && parsed.Subscriptions > 0 && Bench.FilterPattern.Validate(parsed.EffectiveFilterPattern, parsed.Subscriptions) is { } reason)
        {
            error = $"invalid value '{parsed.EffectiveFilterPattern}' for --filter-pattern: {reason}";
            return false;
        }

        if (parsed.Check > 0 && parsed.Subscriptions == 0)
        {
            error = "--check needs --subscriptions 1 or more (it publishes to the connections' filters)";
            return false;
        }

        if (parsed.ScenarioKind == "fanout" && (long)parsed.Subscribers * parsed.Publishers >= 1 << 20)
        {
            error = "fanout: --publishers × --subscribers must stay below 1,048,576";
            return false;
        }

        return true;
    }

    private static bool Set(string value, Action<string> set)
    {
        set(value);
        return true;
    }

    private static bool TryInt(string value, int min, int max, Action<int> set)
    {
        if (!int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) || parsed < min || parsed > max)
        {
            return false;
        }

        set(parsed);
        return true;
    }

    private static bool TryDouble(string value, double min, Action<double> set)
    {
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) || parsed < min || !double.IsFinite(parsed))
        {
            return false;
        }

        set(parsed);
        return true;
    }

    private static bool TryTopic(string value, Action<string> set)
    {
        if (value.Length == 0 || value.AsSpan().IndexOfAny('+', '#') >= 0)
        {
            return false;
        }

        set(value.TrimEnd('/'));
        return true;
    }

    private static bool TryPids(string value, BenchOptions options)
    {
        var pids = new List<int>();
        foreach (var part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid) || pid <= 0)
            {
                return false;
            }

            pids.Add(pid);
        }

        options.BrokerPids = pids;
        return pids.Count > 0;
    }

    private static bool TryProtocol(string value, BenchOptions options)
    {
        switch (value)
        {
            case "5":
            case "500":
                options.ProtocolLevel = MqttWire.Version5;
                return true;
            case "311":
            case "3.1.1":
                options.ProtocolLevel = MqttWire.Version311;
                return true;
            default:
                return false;
        }
    }
}

/// <summary>One broker endpoint as given on the command line.</summary>
/// <param name="Host">Host name or address.</param>
/// <param name="Port">TCP port.</param>
internal sealed record BrokerAddress(string Host, int Port)
{
    /// <summary>Parses <c>host[:port],host[:port],...</c>; hosts without a port get <paramref name="defaultPort"/>.</summary>
    public static bool TryParseList(string value, int defaultPort, out IReadOnlyList<BrokerAddress> hosts)
    {
        var list = new List<BrokerAddress>();
        hosts = list;
        foreach (var part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var host = part;
            var port = defaultPort;
            var colon = part.LastIndexOf(':');
            // A single colon separates the port; more than one is a bare IPv6 address ([::1]:1883 has the port after ']').
            if (colon > 0 && (part.IndexOf(':') == colon || part[colon - 1] == ']'))
            {
                if (!int.TryParse(part.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
                {
                    return false;
                }

                host = part[..colon];
            }

            host = host.Trim('[', ']');
            if (host.Length == 0)
            {
                return false;
            }

            list.Add(new BrokerAddress(host, port));
        }

        return list.Count > 0;
    }

    /// <inheritdoc />
    public override string ToString() => Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
