using System.Globalization;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Orleans.Mqtt.Bench;

/// <summary>Settings of one bench run, parsed from the command line.</summary>
internal sealed class BenchOptions
{
    /// <summary>The usage text printed for <c>--help</c> and after a bad argument.</summary>
    public const string Usage = """
        usage: Orleans.Mqtt.Bench pairs [options]

        pairs: N publisher/subscriber pairs; pair i publishes on bench/<run-id>/<i> and its
        subscriber subscribes that exact topic with the same QoS.

          --host <name>             broker host (default 127.0.0.1)
          --port <n>                broker port (default 1883)
          --pairs <n>               number of pairs (default 50)
          --qos <0|1|2>             QoS of publish and subscription (default 1)
          --size <bytes>            payload size, at least 24 (default 100)
          --duration <s>            measured interval after warm-up (default 20)
          --warmup <s>              warm-up before measuring (default 3)
          --window <n>              messages in flight per publisher (default 10); at QoS 0
                                    messages not yet delivered to the subscriber
          --rate <msg/s>            cap on the total publish rate, 0 = closed loop (default 0)
          --json <path>             also write the result as JSON
          --protocol <5|311>        MQTT protocol version (default 5)
          --connect-timeout <s>     connect and acknowledgement timeout (default 10)

        exit codes: 0 ok, 1 bad arguments, 2 connections failed, 3 clients dropped during the run
        """;

    /// <summary>Scenario name; only <c>pairs</c> exists so far.</summary>
    public string Scenario { get; set; } = "pairs";

    /// <summary>Broker host name or address.</summary>
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>Broker TCP port.</summary>
    public int Port { get; set; } = 1883;

    /// <summary>Number of publisher/subscriber pairs.</summary>
    public int Pairs { get; set; } = 50;

    /// <summary>QoS used for publishing and subscribing.</summary>
    public MqttQualityOfServiceLevel Qos { get; set; } = MqttQualityOfServiceLevel.AtLeastOnce;

    /// <summary>Payload size in bytes, header included.</summary>
    public int Size { get; set; } = 100;

    /// <summary>Length of the measured interval.</summary>
    public TimeSpan Duration { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Length of the warm-up before the measured interval.</summary>
    public TimeSpan Warmup { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Messages in flight per publisher.</summary>
    public int Window { get; set; } = 10;

    /// <summary>Cap on the total publish rate in messages per second; 0 means closed loop.</summary>
    public double Rate { get; set; }

    /// <summary>Where to write the JSON result, if anywhere.</summary>
    public string? JsonPath { get; set; }

    /// <summary>MQTT protocol version.</summary>
    public MqttProtocolVersion Protocol { get; set; } = MqttProtocolVersion.V500;

    /// <summary>Timeout for connecting and for waiting on an acknowledgement.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>True when <c>--help</c> was given.</summary>
    public bool ShowHelp { get; set; }

    /// <summary>The protocol version as written on the command line (5 or 311).</summary>
    public string ProtocolName => Protocol == MqttProtocolVersion.V500 ? "5" : "311";

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

        if (parsed.Scenario != "pairs")
        {
            error = $"unknown scenario '{parsed.Scenario}' (known: pairs)";
            return false;
        }

        for (; i < args.Count; i++)
        {
            var name = args[i];
            if (name is "-h" or "--help")
            {
                parsed.ShowHelp = true;
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
                "--host" => Set(value, v => parsed.Host = v),
                "--port" => TryInt(value, 1, 65535, v => parsed.Port = v),
                "--pairs" => TryInt(value, 1, 100_000, v => parsed.Pairs = v),
                "--qos" => TryInt(value, 0, 2, v => parsed.Qos = (MqttQualityOfServiceLevel)v),
                "--size" => TryInt(value, PayloadHeader.Size, 256 * 1024 * 1024, v => parsed.Size = v),
                "--duration" => TryDouble(value, 0.1, v => parsed.Duration = TimeSpan.FromSeconds(v)),
                "--warmup" => TryDouble(value, 0, v => parsed.Warmup = TimeSpan.FromSeconds(v)),
                "--window" => TryInt(value, 1, 65535, v => parsed.Window = v),
                "--rate" => TryDouble(value, 0, v => parsed.Rate = v),
                "--json" => Set(value, v => parsed.JsonPath = v),
                "--protocol" => TryProtocol(value, parsed),
                "--connect-timeout" => TryDouble(value, 0.1, v => parsed.ConnectTimeout = TimeSpan.FromSeconds(v)),
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

    private static bool TryProtocol(string value, BenchOptions options)
    {
        switch (value)
        {
            case "5":
            case "500":
                options.Protocol = MqttProtocolVersion.V500;
                return true;
            case "311":
            case "3.1.1":
                options.Protocol = MqttProtocolVersion.V311;
                return true;
            default:
                return false;
        }
    }
}
