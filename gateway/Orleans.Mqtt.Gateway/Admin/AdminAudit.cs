using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The record of every change made through the admin API: one log line naming the action, its target, the key's name
/// and the caller's address, and the counter <c>mqtt.admin.actions</c> by action.
/// </summary>
internal sealed partial class AdminAudit(MqttMetrics metrics, ILogger<AdminAudit> logger)
{
    /// <summary>Records <paramref name="action"/> (a metric tag: kick, subscribe, unsubscribe, publish, retained_delete) on <paramref name="target"/>.</summary>
    public void Record(HttpContext context, string action, string target, string? outcome = null)
    {
        metrics.AdminActions.Add(1, new KeyValuePair<string, object?>("action", action));
        var caller = context.Features.Get<AdminCaller>()?.Name ?? "unknown";
        LogAction(logger, action, target, outcome ?? "done", caller, context.Connection.RemoteIpAddress?.ToString());
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Admin action {Action} on {Target} ({Outcome}) by key '{KeyName}' from {Remote}")]
    private static partial void LogAction(ILogger logger, string action, string target, string outcome, string keyName, string? remote);
}
