using System.Text.Json;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Reads the access rules a token carries in its ACL claim (<c>Mqtt:Jwt:AclClaim</c>, default <c>acl</c>):
/// <code>"acl": { "pub": ["devices/%c/telemetry"], "sub": ["devices/%c/cmd/#"], "all": ["devices/%c/state"] }</code>
/// <c>pub</c> filters become <see cref="AccessKind.Write"/> rules, <c>sub</c> ones <see cref="AccessKind.Read"/>, <c>all</c> ones
/// <see cref="AccessKind.ReadWrite"/>. Filters may hold <c>%c</c> and <c>%u</c>; EMQX's <c>${clientid}</c> and <c>${username}</c>
/// are taken as the same. Anything else in the claim (another key, a list that holds something other than a topic filter)
/// makes the token invalid rather than silently granting less or more.
/// </summary>
internal static class ClaimAccessRules
{
    private static readonly (string Key, AccessKind Kind)[] Lists =
    [
        ("pub", AccessKind.Write),
        ("sub", AccessKind.Read),
        ("all", AccessKind.ReadWrite),
    ];

    /// <summary>
    /// Reads the rules of claim <paramref name="claim"/> of <paramref name="payload"/> (a token's payload object). True with null
    /// rules when the token has no such claim; false with <paramref name="error"/> when the claim is not of the shape above.
    /// </summary>
    public static bool TryRead(JsonElement payload, string claim, out IReadOnlyList<AccessRule>? rules, out string? error)
    {
        rules = null;
        error = null;
        if (payload.ValueKind != JsonValueKind.Object || !payload.TryGetProperty(claim, out var acl))
        {
            return true;
        }

        if (acl.ValueKind != JsonValueKind.Object)
        {
            error = $"claim '{claim}' must be an object with 'pub', 'sub' and 'all' lists";
            return false;
        }

        var result = new List<AccessRule>();
        foreach (var property in acl.EnumerateObject())
        {
            var kind = KindOf(property.Name);
            if (kind is null)
            {
                error = $"claim '{claim}' has key '{property.Name}'; only 'pub', 'sub' and 'all' are known";
                return false;
            }

            if (property.Value.ValueKind != JsonValueKind.Array)
            {
                error = $"claim '{claim}.{property.Name}' must be a list of topic filters";
                return false;
            }

            foreach (var item in property.Value.EnumerateArray())
            {
                var filter = item.ValueKind == JsonValueKind.String ? Normalize(item.GetString()!) : null;
                if (filter is null || !MqttTopic.IsValidTopicFilter(filter))
                {
                    error = $"claim '{claim}.{property.Name}' holds {item.GetRawText()}, which is not a valid topic filter";
                    return false;
                }

                result.Add(new AccessRule(kind.Value, filter));
            }
        }

        rules = result;
        return true;
    }

    private static AccessKind? KindOf(string key)
    {
        foreach (var (name, kind) in Lists)
        {
            if (string.Equals(name, key, StringComparison.Ordinal))
            {
                return kind;
            }
        }

        return null;
    }

    // One placeholder syntax for the ACL engine: EMQX-style placeholders are written the mosquitto way.
    private static string Normalize(string filter) =>
        filter.Replace("${clientid}", "%c", StringComparison.Ordinal).Replace("${username}", "%u", StringComparison.Ordinal);
}
