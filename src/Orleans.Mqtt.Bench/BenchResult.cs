using System.Globalization;
using System.Text;
using System.Text.Json.Serialization;

namespace Orleans.Mqtt.Bench;

/// <summary>Latency percentiles, in milliseconds.</summary>
internal sealed class LatencySummary
{
    /// <summary>Number of samples the percentiles are computed from.</summary>
    public long Count { get; init; }

    /// <summary>Median latency.</summary>
    public double P50 { get; init; }

    /// <summary>90th percentile latency.</summary>
    public double P90 { get; init; }

    /// <summary>99th percentile latency.</summary>
    public double P99 { get; init; }

    /// <summary>99.9th percentile latency.</summary>
    public double P999 { get; init; }

    /// <summary>Largest latency.</summary>
    public double Max { get; init; }

    /// <summary>Mean latency.</summary>
    public double Mean { get; init; }

    /// <summary>Summarises a histogram recorded in nanoseconds.</summary>
    public static LatencySummary FromNanoseconds(LatencyHistogram histogram)
    {
        const double NanosPerMilli = 1_000_000.0;
        return new LatencySummary
        {
            Count = histogram.Count,
            P50 = histogram.ValueAtPercentile(50) / NanosPerMilli,
            P90 = histogram.ValueAtPercentile(90) / NanosPerMilli,
            P99 = histogram.ValueAtPercentile(99) / NanosPerMilli,
            P999 = histogram.ValueAtPercentile(99.9) / NanosPerMilli,
            Max = histogram.Max / NanosPerMilli,
            Mean = histogram.Mean / NanosPerMilli,
        };
    }
}

/// <summary>What a conn run measured.</summary>
internal sealed class ConnectResult
{
    /// <summary>Connections asked for.</summary>
    public int Requested { get; init; }

    /// <summary>Connections that got CONNACK success (and SUBACK, with a subscription).</summary>
    public int Connected { get; init; }

    /// <summary>Connections that failed.</summary>
    public int Failed { get; init; }

    /// <summary>Target connect rate, 0 = as fast as possible.</summary>
    public double TargetRate { get; init; }

    /// <summary>Connections per second from the first connect to the last completed one.</summary>
    public double AchievedRate { get; init; }

    /// <summary>Seconds from the first connect to the last completed one.</summary>
    public double ConnectSeconds { get; init; }

    /// <summary>Unix time (ms) the first connect started; aggregates worker results.</summary>
    public long StartUnixMs { get; init; }

    /// <summary>Unix time (ms) the last connect completed.</summary>
    public long EndUnixMs { get; init; }

    /// <summary>True with clean start off and a session expiry.</summary>
    public bool Persistent { get; init; }

    /// <summary>Subscriptions per connection.</summary>
    public int Subscriptions { get; init; }

    /// <summary>Seconds the connections were held after the last one connected.</summary>
    public double HeldSeconds { get; init; }

    /// <summary>Time from the start of the TCP connect to CONNACK.</summary>
    public LatencySummary ConnAckMs { get; init; } = new();

    /// <summary>Worker results only: the CONNACK latency histogram (nanoseconds) as bucket/count pairs, for the parent to merge.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<long[]>? ConnAckHistogram { get; init; }

    /// <summary>Worker processes the connections were spread over.</summary>
    public int Workers { get; init; } = 1;

    /// <summary>Distinct source addresses used (1 when the system chose).</summary>
    public int SourceAddresses { get; init; } = 1;

    /// <summary>RSS of the broker processes (summed) before connecting, in bytes; 0 when not asked for.</summary>
    public long BrokerRssBefore { get; init; }

    /// <summary>RSS of the broker processes 2 s after the last connect (or halfway through a shorter hold), in bytes.</summary>
    public long BrokerRssHeld { get; init; }

    /// <summary>RSS growth per connected connection at <see cref="BrokerRssHeld"/>, in bytes.</summary>
    public double BrokerBytesPerConnection { get; init; }

    /// <summary>RSS of the broker processes at the end of the hold, with every connection idle since, in bytes.</summary>
    public long BrokerRssEnd { get; init; }

    /// <summary>RSS growth per connected connection at <see cref="BrokerRssEnd"/>, in bytes.</summary>
    public double BrokerBytesPerConnectionEnd { get; init; }

    /// <summary>
    /// CPU time of the broker's processes (<c>--broker-pid</c>) from the first connect to the last one's SUBACK, per
    /// connected connection, in microseconds; 0 without <c>--broker-pid</c> or with worker processes.
    /// </summary>
    public double BrokerCpuMicrosPerConnect { get; init; }

    /// <summary>The same for this load tool's own process: what the tool spends on each connect.</summary>
    public double ToolCpuMicrosPerConnect { get; init; }

    /// <summary>Route check: messages published to a topic of a sampled filter.</summary>
    public int Checked { get; init; }

    /// <summary>Route check: of those, delivered to the connection holding the filter within the trial timeout.</summary>
    public int CheckDelivered { get; init; }

    /// <summary>Route check: not delivered (or not published) in time.</summary>
    public int CheckMissed { get; init; }
}

/// <summary>What a subroute run measured.</summary>
internal sealed class RouteResult
{
    /// <summary>True for the retained variant: publish retained, subscribe at its PUBACK.</summary>
    public bool Retained { get; init; }

    /// <summary>Trials asked for.</summary>
    public int Requested { get; init; }

    /// <summary>Trials run at once.</summary>
    public int Concurrency { get; init; }

    /// <summary>How long a trial waited for its message, in seconds.</summary>
    public double TrialTimeoutSeconds { get; init; }

    /// <summary>Trials that ran to an outcome: delivered, missed or failed.</summary>
    public int Trials { get; init; }

    /// <summary>Trials whose message arrived within the timeout.</summary>
    public int Delivered { get; init; }

    /// <summary>Trials whose message did not arrive within the timeout although the broker had acknowledged both steps.</summary>
    public int Misses { get; init; }

    /// <summary>Trials that could not be carried out: subscribe or publish refused or unanswered, connection lost.</summary>
    public int Failed { get; init; }

    /// <summary>Seconds from the first trial to the last outcome.</summary>
    public double Seconds { get; init; }

    /// <summary>Trials per second.</summary>
    public double TrialsPerSecond { get; init; }

    /// <summary>SUBACK to delivered (retained: PUBACK to retained delivered), of delivered trials.</summary>
    public LatencySummary RouteMs { get; init; } = new();

    /// <summary>SUBSCRIBE sent to SUBACK received.</summary>
    public LatencySummary SubAckMs { get; init; } = new();

    /// <summary>The first missed trials (at most ten), for looking them up in broker logs.</summary>
    public IReadOnlyList<long> MissedTrials { get; init; } = [];
}

/// <summary>What a fuzz run found.</summary>
internal sealed class FuzzResult
{
    /// <summary>Mutated packets asked for.</summary>
    public int Requested { get; init; }

    /// <summary>Seed of lane 0.</summary>
    public int Seed { get; init; }

    /// <summary>Lanes sending at once.</summary>
    public int Lanes { get; init; }

    /// <summary>Mutated packets sent.</summary>
    public long Sent { get; init; }

    /// <summary>Connections opened by the lanes.</summary>
    public long Connections { get; init; }

    /// <summary>Mutated packets the broker took: the PINGRESP behind them came back.</summary>
    public long Answered { get; init; }

    /// <summary>Mutated packets after which the broker closed the connection.</summary>
    public long Closed { get; init; }

    /// <summary>Mutated packets after which neither a PINGRESP nor a close came within the timeout.</summary>
    public long NoAnswer { get; init; }

    /// <summary>Closes by the MQTT 5 DISCONNECT or CONNACK reason code the broker sent, or how the connection ended without one.</summary>
    public IReadOnlyDictionary<string, long> CloseReasons { get; init; } = new Dictionary<string, long>();

    /// <summary>Accepted mutated packets that the oracle finds something forbidden in: each should have closed the connection.</summary>
    public long AcceptedForbidden { get; init; }

    /// <summary>The first of them (at most ten): version, first byte, body in hex, what is forbidden.</summary>
    public IReadOnlyList<string> AcceptedForbiddenSamples { get; init; } = [];

    /// <summary>Seconds the lanes ran.</summary>
    public double Seconds { get; init; }

    /// <summary>QoS 1 messages the steady publisher sent.</summary>
    public long SteadySent { get; init; }

    /// <summary>Of them, delivered to the steady subscriber within the timeout.</summary>
    public long SteadyReceived { get; init; }

    /// <summary>Of them, not delivered within the timeout (1 when the steady client could not even start).</summary>
    public long SteadyLost { get; init; }

    /// <summary>False when a broker process given with --broker-pid was gone at the end.</summary>
    public bool BrokerAlive { get; init; }

    /// <summary>RSS of the broker processes before the run, in bytes; 0 when not asked for.</summary>
    public long BrokerRssBefore { get; init; }

    /// <summary>Largest RSS sampled (every 100 ms) during the run, in bytes.</summary>
    public long BrokerRssPeak { get; init; }

    /// <summary>RSS after the run and <see cref="SettleSeconds"/>, in bytes.</summary>
    public long BrokerRssAfter { get; init; }

    /// <summary>Wait between the end of the run and <see cref="BrokerRssAfter"/>.</summary>
    public double SettleSeconds { get; init; }
}

/// <summary>The outcome of one bench run, printed as a summary and optionally written as JSON.</summary>
internal sealed class BenchResult
{
    /// <summary>Scenario name as given (p2p, pairs, pub, sub, fanout, fanin, conn).</summary>
    public string Scenario { get; init; } = "pairs";

    /// <summary>Random id that namespaces this run's topics and client ids.</summary>
    public string RunId { get; init; } = "";

    /// <summary>Brokers as host:port, comma separated.</summary>
    public string Broker { get; init; } = "";

    /// <summary>MQTT protocol version, 5 or 311.</summary>
    public string Protocol { get; init; } = "5";

    /// <summary>QoS of publish and subscription.</summary>
    public int Qos { get; init; }

    /// <summary>p2p: pairs requested.</summary>
    public int Pairs { get; init; }

    /// <summary>p2p: pairs whose two clients connected and subscribed.</summary>
    public int PairsRunning { get; init; }

    /// <summary>Publishers requested.</summary>
    public int Publishers { get; init; }

    /// <summary>Publishers connected.</summary>
    public int PublishersRunning { get; init; }

    /// <summary>Subscribers requested.</summary>
    public int Subscribers { get; init; }

    /// <summary>Subscribers connected and subscribed.</summary>
    public int SubscribersRunning { get; init; }

    /// <summary>Payload size in bytes.</summary>
    public int Size { get; init; }

    /// <summary>Messages in flight per publisher.</summary>
    public int Window { get; init; }

    /// <summary>Total publish rate cap in msg/s, 0 for closed loop.</summary>
    public double Rate { get; init; }

    /// <summary>Warm-up length in seconds.</summary>
    public double WarmupSeconds { get; init; }

    /// <summary>Length of the measured interval in seconds, as actually timed.</summary>
    public double MeasuredSeconds { get; init; }

    /// <summary>Deliveries per second in the measured interval (duplicates included).</summary>
    public double DeliveredPerSecond { get; init; }

    /// <summary>Publishes accepted per second in the measured interval (acknowledged at QoS 1/2).</summary>
    public double PublishedPerSecond { get; init; }

    /// <summary>Deliveries in the measured interval.</summary>
    public long DeliveredMeasured { get; init; }

    /// <summary>Publishes accepted in the measured interval.</summary>
    public long PublishedMeasured { get; init; }

    /// <summary>Deliveries over the whole run, drain included.</summary>
    public long DeliveredTotal { get; init; }

    /// <summary>Publishes accepted over the whole run.</summary>
    public long PublishedTotal { get; init; }

    /// <summary>Publish-to-deliver latency of messages sent in the measured interval (at a fixed rate, from each message's scheduled time).</summary>
    public LatencySummary LatencyMs { get; init; } = new();

    /// <summary>
    /// The same deliveries' latency from when the tool actually wrote each message: without the time it waited for
    /// the pacing tick or behind a full window. Equal to <see cref="LatencyMs"/> in closed loop.
    /// </summary>
    public LatencySummary SendLatencyMs { get; init; } = new();

    /// <summary>Accepted publishes that a subscriber that should have got them never got (sub: gaps in the sequences).</summary>
    public long Lost { get; init; }

    /// <summary>Deliveries of a message that had been delivered before (fanin: to any member of the group).</summary>
    public long Duplicates { get; init; }

    /// <summary>First deliveries that arrived after a later message of the same publisher (per subscriber).</summary>
    public long OutOfOrder { get; init; }

    /// <summary>Deliveries whose payload was not a bench payload.</summary>
    public long Malformed { get; init; }

    /// <summary>Subscribers that lost messages or got duplicates (fanin: 1 when the group did).</summary>
    public int SubscribersWithLossOrDuplicates { get; init; }

    /// <summary>The most messages any one subscriber lost (fanin: the group).</summary>
    public long WorstSubscriberLost { get; init; }

    /// <summary>Clients that failed to connect or subscribe.</summary>
    public int ConnectErrors { get; init; }

    /// <summary>Clients the broker dropped while the run was going on.</summary>
    public int Disconnects { get; init; }

    /// <summary>Publishes the broker refused.</summary>
    public long PublishErrors { get; init; }

    /// <summary>Times a publisher gave up waiting for a delivery and reused the slot.</summary>
    public long WindowStalls { get; init; }

    /// <summary>CPU used by this tool during the measured interval, in cores.</summary>
    public double ToolCpuCores { get; init; }

    /// <summary>Bytes the tool allocated in the measured interval per message published or delivered (the whole process, timers and progress included).</summary>
    public double ToolAllocatedBytesPerMessage { get; init; }

    /// <summary>CPU used by the processes given with <c>--broker-pid</c> during the measured interval, in cores (message scenarios).</summary>
    public double BrokerCpuCores { get; init; }

    /// <summary>conn only: what the connect phase measured.</summary>
    public ConnectResult? Connect { get; init; }

    /// <summary>subroute only: what the trials measured.</summary>
    public RouteResult? Route { get; init; }

    /// <summary>fuzz results; null for other scenarios.</summary>
    public FuzzResult? Fuzz { get; init; }

    /// <summary>Process exit code the run ends with.</summary>
    public int ExitCode { get; init; }

    /// <summary>A few distinct error messages, for diagnosis.</summary>
    public IReadOnlyList<string> Errors { get; init; } = [];

    /// <summary>The human-readable summary printed on stdout.</summary>
    public string ToText()
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(c, $"scenario     {Scenario}  run {RunId}  broker {Broker}  MQTT {Protocol}");
        if (Connect is { } connect)
        {
            var target = connect.TargetRate > 0 ? connect.TargetRate.ToString("N0", c) + "/s" : "unlimited";
            var sessions = connect.Persistent ? "persistent sessions" : "clean start";
            sb.AppendLine(c, $"load         {connect.Requested:N0} connections  {sessions}  {connect.Subscriptions} subscription(s) each  target {target}  {connect.Workers} process(es)  {connect.SourceAddresses} source address(es)");
            sb.AppendLine(c, $"connected    {connect.Connected:N0}  failed {connect.Failed:N0}  in {connect.ConnectSeconds:F2} s = {connect.AchievedRate,10:N0} conn/s  held {connect.HeldSeconds:F1} s");
            var l = connect.ConnAckMs;
            sb.AppendLine(c, $"connack ms   p50 {l.P50:F3}  p90 {l.P90:F3}  p99 {l.P99:F3}  max {l.Max:F3}  (n={l.Count:N0})");
            if (connect.BrokerRssBefore > 0)
            {
                sb.AppendLine(c, $"broker rss   {connect.BrokerRssBefore / 1048576.0:N1} MiB before, {connect.BrokerRssHeld / 1048576.0:N1} MiB held = {connect.BrokerBytesPerConnection:N0} bytes per connection");
                sb.AppendLine(c, $"broker rss   {connect.BrokerRssEnd / 1048576.0:N1} MiB at the end of the hold = {connect.BrokerBytesPerConnectionEnd:N0} bytes per connection");
            }

            if (connect.ToolCpuMicrosPerConnect > 0)
            {
                sb.AppendLine(c, $"connect cpu  broker {connect.BrokerCpuMicrosPerConnect:N0} µs  tool {connect.ToolCpuMicrosPerConnect:N0} µs per connect (while connecting)");
            }

            if (connect.Checked + connect.CheckMissed > 0)
            {
                sb.AppendLine(c, $"route check  {connect.Checked:N0} published  {connect.CheckDelivered:N0} delivered  {connect.CheckMissed:N0} missed");
            }

            sb.AppendLine(c, $"errors       connect {ConnectErrors}  disconnects {Disconnects}");
        }
        else if (Route is { } route)
        {
            var (what, from) = route.Retained ? ("retained: PUBACK -> retained delivered", "puback") : ("SUBACK -> delivered", "suback");
            sb.AppendLine(c, $"load         {route.Requested:N0} trials  {what}  concurrency {route.Concurrency}  QoS 1  {Size} B payload  timeout {route.TrialTimeoutSeconds:F1} s");
            sb.AppendLine(c, $"trials       {route.Trials:N0}  delivered {route.Delivered:N0}  misses {route.Misses:N0}  failed {route.Failed:N0}  in {route.Seconds:F2} s = {route.TrialsPerSecond:N1} trials/s");
            AppendLatency(sb, $"{from}->msg ms", route.RouteMs);
            AppendLatency(sb, "sub->suback ms", route.SubAckMs);
            if (route.MissedTrials.Count > 0)
            {
                sb.AppendLine(c, $"missed       trials {string.Join(", ", route.MissedTrials)}{(route.Misses > route.MissedTrials.Count ? ", ..." : "")}");
            }

            sb.AppendLine(c, $"errors       connect {ConnectErrors}  disconnects {Disconnects}");
        }
        else if (Fuzz is { } fuzz)
        {
            sb.AppendLine(c, $"load         {fuzz.Requested:N0} mutated packets, MQTT 3.1.1 and 5, seed {fuzz.Seed}, {fuzz.Lanes} lanes; steady QoS 1 at {Rate:N0} msg/s");
            sb.AppendLine(c, $"sent         {fuzz.Sent:N0} mutated packets over {fuzz.Connections:N0} connections in {fuzz.Seconds:F1} s = {fuzz.Sent / Math.Max(0.001, fuzz.Seconds):N0}/s");
            sb.AppendLine(c, $"answers      accepted {fuzz.Answered:N0}  closed by the broker {fuzz.Closed:N0}  no answer {fuzz.NoAnswer:N0}");
            foreach (var (reason, count) in fuzz.CloseReasons)
            {
                sb.AppendLine(c, $"  closed     {reason,-34} {count,10:N0}");
            }

            sb.AppendLine(c, $"forbidden    accepted although the oracle finds them forbidden: {fuzz.AcceptedForbidden:N0}");
            foreach (var sample in fuzz.AcceptedForbiddenSamples)
            {
                sb.AppendLine(c, $"  accepted   {sample}");
            }

            sb.AppendLine(c, $"steady       sent {fuzz.SteadySent:N0}  received {fuzz.SteadyReceived:N0}  lost {fuzz.SteadyLost:N0}");
            if (fuzz.BrokerRssBefore > 0)
            {
                sb.AppendLine(c, $"broker       {(fuzz.BrokerAlive ? "alive" : "GONE")}  rss {fuzz.BrokerRssBefore / 1048576.0:N1} MiB before, {fuzz.BrokerRssPeak / 1048576.0:N1} MiB peak, {fuzz.BrokerRssAfter / 1048576.0:N1} MiB {fuzz.SettleSeconds:F0} s after");
            }

            sb.AppendLine(c, $"errors       connect {ConnectErrors}  disconnects {Disconnects}");
        }
        else
        {
            var rate = Rate > 0 ? Rate.ToString("N0", c) + " msg/s" : "closed loop";
            sb.AppendLine(c, $"load         {PublishersRunning}/{Publishers} publishers  {SubscribersRunning}/{Subscribers} subscribers  QoS {Qos}  {Size} B payload  window {Window}  {rate}");
            sb.AppendLine(c, $"measured     {MeasuredSeconds:F2} s after {WarmupSeconds:F1} s warm-up");
            sb.AppendLine(c, $"delivered    {DeliveredPerSecond,12:N0} msg/s  ({DeliveredMeasured:N0} in interval, {DeliveredTotal:N0} total)");
            sb.AppendLine(c, $"published    {PublishedPerSecond,12:N0} msg/s  ({PublishedMeasured:N0} in interval, {PublishedTotal:N0} total)");
            sb.AppendLine(c, $"latency ms   p50 {LatencyMs.P50:F3}  p90 {LatencyMs.P90:F3}  p99 {LatencyMs.P99:F3}  p99.9 {LatencyMs.P999:F3}  max {LatencyMs.Max:F3}  (n={LatencyMs.Count:N0})");
            if (Rate > 0)
            {
                var s = SendLatencyMs;
                sb.AppendLine(c, $"from send ms p50 {s.P50:F3}  p90 {s.P90:F3}  p99 {s.P99:F3}  p99.9 {s.P999:F3}  max {s.Max:F3}  (without the wait for the pacing tick)");
            }
            sb.AppendLine(c, $"delivery     lost {Lost:N0}  duplicates {Duplicates:N0}  out-of-order {OutOfOrder:N0}  malformed {Malformed:N0}  " +
                $"subscribers with loss or duplicates {SubscribersWithLossOrDuplicates:N0} (worst lost {WorstSubscriberLost:N0})");
            sb.AppendLine(c, $"errors       connect {ConnectErrors}  disconnects {Disconnects}  publish {PublishErrors:N0}  window-stalls {WindowStalls:N0}");
        }

        var broker = BrokerCpuCores > 0 ? string.Create(c, $"  broker cpu {BrokerCpuCores:F2} cores") : "";
        if (Connect is null && Route is null && Fuzz is null)
        {
            broker += string.Create(c, $"  tool allocated {ToolAllocatedBytesPerMessage:F1} B per message");
        }

        if (Fuzz is null)
        {
            sb.AppendLine(c, $"tool cpu     {ToolCpuCores:F2} cores{broker}");
        }

        foreach (var error in Errors)
        {
            sb.AppendLine(c, $"  error: {error}");
        }

        return sb.ToString();
    }

    private static void AppendLatency(StringBuilder sb, string label, LatencySummary l)
    {
        sb.AppendLine(CultureInfo.InvariantCulture, $"{label,-15}p50 {l.P50:F3}  p90 {l.P90:F3}  p99 {l.P99:F3}  max {l.Max:F3}  (n={l.Count:N0})");
    }
}

/// <summary>Source-generated JSON metadata for <see cref="BenchResult"/>.</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(BenchResult))]
internal sealed partial class BenchJsonContext : JsonSerializerContext;
