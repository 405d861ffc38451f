using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Runs before every endpoint under <see cref="AdminApi.Prefix"/>: lets in callers <see cref="AdminAccess.Decide"/>
/// accepts and records who they are (<see cref="AdminCaller"/>), refuses the others with a problem (401/403), counts
/// them (<c>mqtt.admin.refused</c>) and logs them at most once per interval per reason. It also turns what the
/// endpoints do not answer themselves into problem details: an unknown path under the prefix (404), a request the
/// framework refused before the endpoint ran (a body or query value that does not bind), and a failed cluster call
/// (503) or other error (500).
/// </summary>
internal sealed partial class AdminAuthorizationMiddleware
{
    private readonly RequestDelegate _next;
    private readonly ApiKeyStore _keys;
    private readonly MqttMetrics _metrics;
    private readonly IProblemDetailsService _problems;
    private readonly ILogger<AdminAuthorizationMiddleware> _logger;
    private readonly LogLimiter[] _refusalLogs;
    private readonly int _port;

    public AdminAuthorizationMiddleware(
        RequestDelegate next,
        ApiKeyStore keys,
        MqttMetrics metrics,
        IProblemDetailsService problems,
        IOptions<HttpEndpointOptions> http,
        TimeProvider time,
        ILogger<AdminAuthorizationMiddleware> logger)
    {
        _next = next;
        _port = http.Value.Port;
        _keys = keys;
        _metrics = metrics;
        _problems = problems;
        _logger = logger;
        _refusalLogs = [.. Enum.GetValues<AdminRefusal>().Select(_ => new LogLimiter(time, LogLimiter.DefaultInterval))];
    }

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Connection.LocalPort != _port)
        {
            // Kestrel serves every endpoint on every HTTP listener; the admin API is only on Http:Port, not the WebSocket port.
            await WriteProblemAsync(context, StatusCodes.Status404NotFound, "Not found", $"The admin API is served on Http:Port ({_port}) only.");
            return;
        }

        var decision = AdminAccess.Decide(
            _keys.Current, context.Connection.RemoteIpAddress, context.Request.Headers.Authorization, context.Request.Headers[AdminAccess.ApiKeyHeader]);
        if (decision.Refusal is { } refusal)
        {
            _metrics.AdminRefused.Add(1, new KeyValuePair<string, object?>("reason", refusal.Tag()));
            if (_refusalLogs[(int)refusal].TryEnter(1, out var suppressed))
            {
                LogRefused(_logger, context.Request.Method, context.Request.Path, context.Connection.RemoteIpAddress?.ToString(), refusal.Tag(), suppressed);
            }

            if (refusal != AdminRefusal.NotLoopback)
            {
                context.Response.Headers.WWWAuthenticate = "Bearer";
            }

            await WriteProblemAsync(context, refusal.Status(), "Not authorized", refusal.Detail());
            return;
        }

        context.Features.Set(new AdminCaller(decision.Caller!));
        try
        {
            await _next(context);
            if (context.Response.HasStarted || context.Response.StatusCode < 400)
            {
                return;
            }

            if (context.GetEndpoint() is null)
            {
                await WriteProblemAsync(context, context.Response.StatusCode, "No such endpoint", $"{context.Request.Method} {context.Request.Path} is not part of the admin API; see {AdminApi.OpenApiPath}.");
            }
            else
            {
                // What the framework refused before the endpoint ran: a body that is not the JSON the endpoint takes, a
                // query value that is not a number, a wrong content type.
                await WriteProblemAsync(context, context.Response.StatusCode, "Invalid request", $"The request does not fit {context.Request.Method} {context.Request.Path}; see {AdminApi.OpenApiPath}.");
            }
        }
        catch (Exception ex) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            var unavailable = ex is OrleansException or TimeoutException or SiloUnavailableException;
            LogFailed(_logger, ex, context.Request.Method, context.Request.Path);
            await WriteProblemAsync(
                context,
                unavailable ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status500InternalServerError,
                unavailable ? "Cluster unavailable" : "Internal error",
                unavailable ? $"A call into the cluster failed: {ex.Message}" : "The request failed; the gateway's log has the details.");
        }
    }

    private ValueTask WriteProblemAsync(HttpContext context, int status, string title, string detail)
    {
        context.Response.StatusCode = status;
        return _problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        });
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Admin API call {Method} {Path} from {Remote} refused ({Reason}); {Suppressed} more refusals for this reason since the last line")]
    private static partial void LogRefused(ILogger logger, string method, string path, string? remote, string reason, long suppressed);

    [LoggerMessage(Level = LogLevel.Error, Message = "Admin API call {Method} {Path} failed")]
    private static partial void LogFailed(ILogger logger, Exception ex, string method, string path);
}

/// <summary>Who is calling the admin API: the name of the key the call presented, or <c>loopback</c>.</summary>
internal sealed record AdminCaller(string Name);
