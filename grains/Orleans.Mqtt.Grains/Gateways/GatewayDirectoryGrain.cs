using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// The registry of live gateways (one activation for the cluster, key 0). Gateways report in every few seconds;
/// silos ask which of the gateways their replica names are dead. A new activation (after its silo died) knows no
/// gateway yet, so it gives every gateway one timeout to report in before calling it dead.
/// </summary>
internal sealed partial class GatewayDirectoryGrain(
    IOptions<MqttBrokerOptions> options,
    TimeProvider timeProvider,
    MqttMetrics metrics,
    ILogger<GatewayDirectoryGrain> logger) : Grain, IGatewayDirectoryGrain
{
    private static readonly TimeSpan ForgetDeadAfter = TimeSpan.FromHours(1);
    private readonly Dictionary<string, DateTime> _lastSeen = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTime> _dead = new(StringComparer.Ordinal);
    private DateTime _activatedAt;

    private DateTime Now => timeProvider.GetUtcNow().UtcDateTime;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _activatedAt = Now;
        return Task.CompletedTask;
    }

    public Task<bool> Heartbeat(string gatewayId)
    {
        if (_dead.Remove(gatewayId))
        {
            // Declared dead while it was cut off: its sessions were set offline, so its connections are stale.
            LogDeadGatewayReturned(logger, gatewayId);
            return Task.FromResult(false);
        }

        _lastSeen[gatewayId] = Now;
        return Task.FromResult(true);
    }

    public Task Leave(string gatewayId)
    {
        _lastSeen.Remove(gatewayId);
        _dead[gatewayId] = Now;
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway {GatewayId} is dead: not heard from for {Seconds:F1} s; its sessions become offline")]
    private static partial void LogGatewayDead(ILogger logger, string gatewayId, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway {GatewayId} reported in after it was declared dead; told to close its connections")]
    private static partial void LogDeadGatewayReturned(ILogger logger, string gatewayId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Gateway {GatewayId} left")]
    private static partial void LogLeft(ILogger logger, string gatewayId);
}
