using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// The registry of live gateways (one activation for the cluster, key 0). Gateways report in every few seconds;
/// silos ask which of the gateways their replica names are dead. A new activation (after its silo died) knows no
/// gateway yet, so it gives every gateway one timeout to report in before calling it dead.
/// <para>
/// It also keeps the cluster's figures (<see cref="ClusterStatsAggregator"/>: the heartbeats carry each gateway's
/// counters, each active silo's <see cref="IRouteReplicaGrain.GetStats"/> gives its share) and, being the one
/// activation every gateway calls anyway, publishes them as the <c>$SYS</c> topics every <c>Mqtt:SysInterval</c>
/// (<see cref="SysTopics"/>): once for the cluster, whichever gateways and silos there are. Reentrant: every method but
/// <see cref="GetClusterStats"/> runs without awaiting, so each still runs whole, and a slow silo or publication never
/// holds up a heartbeat.
/// </para>
/// </summary>
[Reentrant]
internal sealed partial class GatewayDirectoryGrain(
    IOptions<MqttBrokerOptions> options,
    TimeProvider timeProvider,
    MqttMetrics metrics,
    IClusterMembershipService membership,
    ILogger<GatewayDirectoryGrain> logger) : Grain, IGatewayDirectoryGrain
{
    private static readonly TimeSpan ForgetDeadAfter = TimeSpan.FromHours(1);
    private static readonly TimeSpan SiloStatsTimeout = TimeSpan.FromSeconds(5);
    private readonly Dictionary<string, DateTime> _lastSeen = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTime> _dead = new(StringComparer.Ordinal);
    private readonly Dictionary<SiloAddress, SiloStats> _siloStats = [];
    private readonly HashSet<string> _nodeTopics = new(StringComparer.Ordinal);
    private ClusterStatsAggregator _stats = null!;
    private DateTime _activatedAt;
    private bool _publishing;

    private DateTime Now => timeProvider.GetUtcNow().UtcDateTime;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _activatedAt = Now;
        _stats = new ClusterStatsAggregator(timeProvider, options.Value.GatewayTimeout);
        var interval = options.Value.SysInterval;
        if (interval > TimeSpan.Zero)
        {
            // Interleaved: a publication waits on topic shards and silos, and heartbeats must not wait behind it.
            this.RegisterGrainTimer(PublishSysTopicsAsync, new GrainTimerCreationOptions { DueTime = interval, Period = interval, Interleave = true });
        }

        return Task.CompletedTask;
    }

    public Task<bool> Heartbeat(GatewayReport report)
    {
        var gatewayId = report.GatewayId;
        if (_dead.Remove(gatewayId))
        {
            // Declared dead while it was cut off: its sessions were set offline, so its connections are stale.
            LogDeadGatewayReturned(logger, gatewayId);
            return Task.FromResult(false);
        }

        _lastSeen[gatewayId] = Now;
        _stats.Report(report);
        return Task.FromResult(true);
    }

    public Task Leave(string gatewayId)
    {
        _lastSeen.Remove(gatewayId);
        _dead[gatewayId] = Now;
        _stats.Depart(gatewayId);
        LogLeft(logger, gatewayId);
        return Task.CompletedTask;
    }

    public Task<string[]> FindDead(string[] gatewayIds)
    {
        var now = Now;
        var timeout = options.Value.GatewayTimeout;
        List<string>? dead = null;
        foreach (var id in gatewayIds)
        {
            if (_dead.ContainsKey(id))
            {
                (dead ??= []).Add(id);
                continue;
            }

            var seen = _lastSeen.TryGetValue(id, out var at) ? at : _activatedAt;
            if (now - seen > timeout)
            {
                _lastSeen.Remove(id);
                _dead[id] = now;
                _stats.Depart(id);
                metrics.GatewaysLost.Add(1);
                LogGatewayDead(logger, id, (now - seen).TotalSeconds);
                (dead ??= []).Add(id);
            }
        }

        foreach (var (id, at) in _dead)
        {
            if (now - at > ForgetDeadAfter)
            {
                _dead.Remove(id);
            }
        }

        return Task.FromResult(dead is null ? Array.Empty<string>() : [.. dead]);
    }

    public Task<GatewayStatus[]> List()
    {
        var now = Now;
        var timeout = options.Value.GatewayTimeout;
        var gateways = new List<GatewayStatus>(_lastSeen.Count + _dead.Count);
        foreach (var (id, seen) in _lastSeen)
        {
            gateways.Add(new GatewayStatus(id, seen, now - seen <= timeout));
        }

        foreach (var id in _dead.Keys)
        {
            gateways.Add(new GatewayStatus(id, null, false));
        }

        gateways.Sort(static (a, b) => string.CompareOrdinal(a.GatewayId, b.GatewayId));
        return Task.FromResult(gateways.ToArray());
    }

    public async Task<ClusterStats> GetClusterStats()
    {
        var active = new List<SiloAddress>();
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            if (member.Status == SiloStatus.Active)
            {
                active.Add(member.SiloAddress);
            }
        }

        var answers = await Task.WhenAll(active.Select(SiloStatsAsync));
        foreach (var address in _siloStats.Keys.Where(a => !active.Contains(a)).ToList())
        {
            _siloStats.Remove(address);
        }

        // Taken after the awaits, from the state as it is now: heartbeats that came in meanwhile count.
        return _stats.Snapshot([.. answers.OfType<SiloStats>()]);
    }

    // A silo's share; when it does not answer in time, its last share (a silo still active owns what it owned).
    private async Task<SiloStats?> SiloStatsAsync(SiloAddress silo)
    {
        try
        {
            var stats = await GrainFactory.GetGrain<IRouteReplicaGrain>(silo.ToParsableString()).GetStats().WaitAsync(SiloStatsTimeout);
            _siloStats[silo] = stats;
            return stats;
        }
        catch (Exception ex)
        {
            LogSiloStatsFailed(logger, silo, ex);
            return _siloStats.GetValueOrDefault(silo);
        }
    }

    private async Task PublishSysTopicsAsync()
    {
        // Nobody reads the topics without a gateway; and one publication at a time.
        if (_publishing || !_lastSeen.Values.Any(seen => Now - seen <= options.Value.GatewayTimeout))
        {
            return;
        }

        _publishing = true;
        try
        {
            var values = SysTopics.For(await GetClusterStats());
            var published = new HashSet<string>(StringComparer.Ordinal);
            var publishes = new List<Task<int>>(values.Count + _nodeTopics.Count);
            foreach (var (topic, value) in values)
            {
                published.Add(topic);
                publishes.Add(PublishRetained(topic, System.Text.Encoding.UTF8.GetBytes(value)));
            }

            // A node's topics go when it does: an empty retained message deletes the retained one.
            foreach (var topic in _nodeTopics)
            {
                if (!published.Contains(topic))
                {
                    publishes.Add(PublishRetained(topic, ReadOnlyMemory<byte>.Empty));
                }
            }

            await Task.WhenAll(publishes);
            _nodeTopics.Clear();
            _nodeTopics.UnionWith(published);
        }
        catch (Exception ex)
        {
            LogSysPublishFailed(logger, ex);
        }
        finally
        {
            _publishing = false;
        }
    }

    private Task<int> PublishRetained(string topic, ReadOnlyMemory<byte> payload) =>
        GrainFactory.GetGrain<ITopicShardGrain>(Topics.MqttTopic.ShardOf(topic, options.Value.TopicShards))
            .Publish(new MqttMessage { Topic = topic, Payload = payload, Retain = true });

    [LoggerMessage(Level = LogLevel.Warning, Message = "Silo {Silo} gave no figures for the cluster's statistics; its last ones are used")]
    private static partial void LogSiloStatsFailed(ILogger logger, SiloAddress silo, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publishing the $SYS topics failed; the next interval retries")]
    private static partial void LogSysPublishFailed(ILogger logger, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway {GatewayId} is dead: not heard from for {Seconds:F1} s; its sessions become offline")]
    private static partial void LogGatewayDead(ILogger logger, string gatewayId, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway {GatewayId} reported in after it was declared dead; told to close its connections")]
    private static partial void LogDeadGatewayReturned(ILogger logger, string gatewayId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Gateway {GatewayId} left")]
    private static partial void LogLeft(ILogger logger, string gatewayId);
}
