using System.Net;

namespace Orleans.Mqtt.Gateway;

/// <summary>Who may call the admin API: the decision for one request, kept apart from HTTP so it can be tested alone.</summary>
internal static class AdminAccess
{
    /// <summary>The header that carries a key as it is (the other is <c>Authorization: Bearer KEY</c>).</summary>
    public const string ApiKeyHeader = "X-Api-Key";

    /// <summary>
    /// Decides a call. With a key set, the call must present one of its keys (<c>Authorization: Bearer KEY</c> or
    /// <c>X-Api-Key: KEY</c>); without one, only a loopback caller is let in (named <c>loopback</c>).
    /// </summary>
    public static AdminDecision Decide(ApiKeySet? keys, IPAddress? remote, string? authorization, string? apiKey)
    {
        if (keys is null)
        {
            return IsLoopback(remote) ? AdminDecision.Allow("loopback") : AdminDecision.Refuse(AdminRefusal.NotLoopback);
        }

        var presented = Presented(authorization, apiKey);
        if (presented is null)
        {
            return AdminDecision.Refuse(AdminRefusal.MissingKey);
        }

        return keys.Find(presented) is { } name ? AdminDecision.Allow(name) : AdminDecision.Refuse(AdminRefusal.BadKey);
    }

    private static string? Presented(string? authorization, string? apiKey)
    {
        if (!string.IsNullOrEmpty(apiKey))
        {
            return apiKey.Trim();
        }

        const string bearer = "Bearer ";
        if (authorization is not null && authorization.StartsWith(bearer, StringComparison.OrdinalIgnoreCase))
        {
            var key = authorization[bearer.Length..].Trim();
            return key.Length > 0 ? key : null;
        }

        return null;
    }

    private static bool IsLoopback(IPAddress? remote) =>
        remote is not null && IPAddress.IsLoopback(remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote);
}

/// <summary>Why a call to the admin API was refused (the metric tag is in <see cref="AdminRefusals"/>).</summary>
internal enum AdminRefusal
{
    /// <summary>A key file is configured and the call carries no key.</summary>
    MissingKey,

    /// <summary>The call's key is not in the key file.</summary>
    BadKey,

    /// <summary>No key file is configured and the caller is not on loopback.</summary>
    NotLoopback,
}

/// <summary>What a refusal means on the wire and in metrics.</summary>
internal static class AdminRefusals
{
    /// <summary>The metric tag value of the reason.</summary>
    public static string Tag(this AdminRefusal refusal) => refusal switch
    {
        AdminRefusal.MissingKey => "missing_key",
        AdminRefusal.BadKey => "bad_key",
        _ => "not_loopback",
    };

    /// <summary>401 for a missing or unknown key, 403 for a caller that no key could let in.</summary>
    public static int Status(this AdminRefusal refusal) =>
        refusal == AdminRefusal.NotLoopback ? StatusCodes.Status403Forbidden : StatusCodes.Status401Unauthorized;

    /// <summary>The problem's detail text.</summary>
    public static string Detail(this AdminRefusal refusal) => refusal switch
    {
        AdminRefusal.MissingKey => "This endpoint needs an API key: 'Authorization: Bearer KEY' or 'X-Api-Key: KEY'.",
        AdminRefusal.BadKey => "The API key is not one of the keys in Http:ApiKeysFile.",
        _ => "No API key file is configured (Http:ApiKeysFile), so only callers on loopback may use the admin API.",
    };
}

/// <summary>The decision on one call: the caller's name (the key's name, or <c>loopback</c>) or why it was refused.</summary>
internal readonly record struct AdminDecision(string? Caller, AdminRefusal? Refusal)
{
    public static AdminDecision Allow(string caller) => new(caller, null);

    public static AdminDecision Refuse(AdminRefusal refusal) => new(null, refusal);
}
