using System.Text.Json;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway.Identity;

public sealed class ClaimAccessRulesTests
{
    [Fact]
    public void Pub_sub_and_all_lists_become_write_read_and_readwrite_rules_in_order()
    {
        var ok = ClaimAccessRules.TryRead(
            Payload("""{"sub":"device-7","acl":{"pub":["devices/%c/telemetry"],"sub":["devices/%c/cmd/#","fleet/+/broadcast"],"all":["devices/%u/state"]}}"""),
            "acl",
            out var rules,
            out var error);

        Assert.True(ok, error);
        Assert.Equal(
            [
                new AccessRule(AccessKind.Write, "devices/%c/telemetry"),
                new AccessRule(AccessKind.Read, "devices/%c/cmd/#"),
                new AccessRule(AccessKind.Read, "fleet/+/broadcast"),
                new AccessRule(AccessKind.ReadWrite, "devices/%u/state"),
            ],
            rules);
    }

    [Fact]
    public void Emqx_placeholders_are_read_as_client_id_and_user_name()
    {
        Assert.True(ClaimAccessRules.TryRead(Payload("""{"acl":{"pub":["t/${clientid}/${username}"]}}"""), "acl", out var rules, out _));
        Assert.Equal([new AccessRule(AccessKind.Write, "t/%c/%u")], rules);
    }

    [Fact]
    public void The_claim_name_is_configurable_and_a_token_without_it_carries_no_rules()
    {
        Assert.True(ClaimAccessRules.TryRead(Payload("""{"mqtt":{"sub":["a/#"]}}"""), "mqtt", out var named, out _));
        Assert.Equal([new AccessRule(AccessKind.Read, "a/#")], named);

        Assert.True(ClaimAccessRules.TryRead(Payload("""{"mqtt":{"sub":["a/#"]}}"""), "acl", out var none, out var error));
        Assert.Null(none);
        Assert.Null(error);
    }

    [Fact]
    public void An_empty_claim_gives_an_empty_rule_list_not_none()
    {
        Assert.True(ClaimAccessRules.TryRead(Payload("""{"acl":{}}"""), "acl", out var rules, out _));
        Assert.NotNull(rules);
        Assert.Empty(rules);
    }

    [Theory]
    [InlineData("""{"acl":"devices/#"}""", "must be an object")]
    [InlineData("""{"acl":{"publish":["a"]}}""", "key 'publish'")]
    [InlineData("""{"acl":{"pub":"devices/#"}}""", "must be a list")]
    [InlineData("""{"acl":{"pub":[42]}}""", "42")]
    [InlineData("""{"acl":{"sub":["a/#/b"]}}""", "a/#/b")]
    [InlineData("""{"acl":{"sub":[""]}}""", "not a valid topic filter")]
    public void A_claim_of_another_shape_is_refused_with_a_reason(string payload, string expected)
    {
        Assert.False(ClaimAccessRules.TryRead(Payload(payload), "acl", out var rules, out var error));
        Assert.Null(rules);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    private static JsonElement Payload(string json) => JsonDocument.Parse(json).RootElement;
}
