using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Telemetry;
using Xunit;

namespace Orleans.Mqtt.Tests.Security;

public sealed class ClientAccessTests
{
    private const string Fleet = """
        topic read public/#
        pattern readwrite devices/%c/#
        pattern deny devices/%c/secret
        pattern read users/%u/#
        user ops
        topic read devices/#
        topic read $SYS/#
        topic deny devices/vault/#
        """;

    [Fact]
    public void A_device_reads_and_writes_its_own_topics_only()
    {
        var d1 = Access(Fleet, "d1", null);

        Assert.True(d1.MayWrite("devices/d1/telemetry"));
        Assert.True(d1.MayRead("devices/d1/cmd"));
        Assert.False(d1.MayWrite("devices/d2/telemetry"));
        Assert.False(d1.MayRead("devices/d2/cmd"));
        Assert.True(d1.MayRead("public/news"));
        Assert.False(d1.MayWrite("public/news"));

        // Deny wins over the readwrite pattern.
        Assert.False(d1.MayRead("devices/d1/secret"));
        Assert.False(d1.MayWrite("devices/d1/secret"));
    }

    [Fact]
    public void A_user_gets_its_block_and_the_patterns_but_not_the_anonymous_rules()
    {
        var ops = Access(Fleet, "console", "ops");

        Assert.True(ops.MayRead("devices/d7/telemetry"));
        Assert.True(ops.MayRead("$SYS/broker/uptime"));
        Assert.False(ops.MayRead("devices/vault/key"));
        Assert.True(ops.MayRead("users/ops/inbox"));
        Assert.False(ops.MayRead("public/news"));
        Assert.False(ops.MayWrite("devices/d7/cmd"));
        Assert.True(ops.MayWrite("devices/console/x"));

        // A user with no block of its own still gets the patterns.
        var stranger = Access(Fleet, "s1", "stranger");
        Assert.True(stranger.MayRead("users/stranger/a"));
        Assert.False(stranger.MayRead("users/ops/a"));
        Assert.False(stranger.MayRead("public/news"));
    }

    [Theory]
    [InlineData("#", "Partial")]
    [InlineData("+/+", "Partial")]
    [InlineData("+/+/secret", "Partial")]
    [InlineData("other/+", "Denied")]
    [InlineData("+/+/+", "Partial")]
    [InlineData("devices/+/cmd", "Partial")]
    [InlineData("devices/d1/cmd", "Covered")]
    [InlineData("devices/d1/#", "Partial")]
    [InlineData("devices/d1/secret", "Denied")]
    [InlineData("devices/d2/#", "Denied")]
    [InlineData("$SYS/#", "Denied")]
    [InlineData("$share/g/devices/d1/cmd", "Covered")]
    [InlineData("$share/g/devices/d2/cmd", "Denied")]
    [InlineData("public/#", "Covered")]
    public void A_subscription_is_judged_by_the_topics_it_can_bring(string filter, string expected)
    {
        Assert.Equal(Enum.Parse<SubscribeAccess>(expected), Access(Fleet, "d1", null).CheckSubscribe(filter));
    }

    [Fact]
    public void SYS_is_readable_only_by_a_rule_naming_it()
    {
        var everything = Access("topic readwrite #", "d1", null);
        Assert.Equal(SubscribeAccess.Denied, everything.CheckSubscribe("$SYS/#"));
        Assert.False(everything.MayRead("$SYS/broker/uptime"));
        Assert.Equal(SubscribeAccess.Covered, Access(Fleet, "c", "ops").CheckSubscribe("$SYS/#"));
    }

    [Theory]
    [InlineData("d2/x")]
    [InlineData("+")]
    [InlineData("#")]
    [InlineData("a+b")]
    public void A_client_id_with_topic_characters_gets_nothing_from_client_id_rules(string clientId)
    {
        var access = Access(Fleet, clientId, null);

        Assert.True(access.HasUnsafeIdentity);
        Assert.False(access.MayWrite("devices/d2/x/telemetry"));
        Assert.False(access.MayRead("devices/d2/cmd"));
        Assert.False(access.MayRead($"devices/{clientId}/cmd"));
        Assert.Equal(SubscribeAccess.Denied, access.CheckSubscribe("devices/#"));

        // A deny rule still holds, widened to every id.
        var user = Access(Fleet, clientId, "ops");
        Assert.False(user.MayRead("devices/x/secret"));
        Assert.True(user.MayRead("devices/x/telemetry"));
    }

    [Fact]
    public void Expansion_is_one_pass()
    {
        Assert.Equal("a/%u/b", ClientAccess.Expand("a/%c/b", "%u", "eve", deny: false));
        Assert.Equal("a/d1-eve/%x", ClientAccess.Expand("a/%c-%u/%x", "d1", "eve", deny: false));
        Assert.Null(ClientAccess.Expand("a/%u", "d1", null, deny: false));
        Assert.Equal("a/+", ClientAccess.Expand("a/%u", "d1", null, deny: true));
    }

    [Fact]
    public void Connection_rules_act_as_one_more_user_block_and_deny_still_wins()
    {
        AccessRule[] token = [new(AccessKind.Write, "fleet/%c/up"), new(AccessKind.Read, "fleet/%u/down"), new(AccessKind.Deny, "public/blocked")];
        var access = Access(Fleet, "d1", "t1", token);

        Assert.True(access.MayWrite("fleet/d1/up"));
        Assert.True(access.MayRead("fleet/t1/down"));
        Assert.True(access.MayWrite("devices/d1/x"));
        Assert.False(access.MayRead("fleet/d1/down"));
        Assert.False(access.MayWrite("devices/d1/secret"));

        var anonymous = Access(Fleet, "d1", null, token);
        Assert.True(anonymous.MayRead("public/news"));
        Assert.False(anonymous.MayRead("public/blocked"));
    }

    [Fact]
    public void Without_a_file_connection_rules_allow_only_what_they_name_and_with_neither_everything_is_allowed()
    {
        var options = new MqttGatewayOptions();
        using var control = new AccessControl(options, Metrics(), NullLogger.Instance, TimeProvider.System);

        Assert.False(control.Enabled);
        Assert.Null(control.ForConnection("d1", null, null));
        Assert.Null(control.ForConnection("d1", null, []));

        var access = control.ForConnection("d1", "u", [new AccessRule(AccessKind.ReadWrite, "own/%c/#")])!;
        Assert.True(access.MayWrite("own/d1/a"));
        Assert.False(access.MayWrite("own/d2/a"));
        Assert.False(access.MayRead("other"));
        Assert.Equal(SubscribeAccess.Denied, access.CheckSubscribe("$SYS/#"));
    }

    [Fact]
    public void New_rules_reach_a_connection_made_before_them_and_its_cached_decisions()
    {
        var source = new AclRuleSource(AclFile.Parse("pattern readwrite devices/%c/#"));
        var access = new ClientAccess(source, "d1", null, null);
        Assert.True(access.MayWrite("devices/d1/a"));
        Assert.True(access.MayRead("devices/d1/a"));
        Assert.False(access.MayRead("shared/a"));

        source.Current = AclFile.Parse("pattern read devices/%c/#\ntopic read shared/#");

        Assert.False(access.MayWrite("devices/d1/a"));
        Assert.True(access.MayRead("devices/d1/a"));
        Assert.True(access.MayRead("shared/a"));
    }

    [Fact]
    public void The_decision_cache_stays_bounded_and_right()
    {
        var access = Access("pattern read devices/%c/#", "d1", null);
        for (var i = 0; i < 3 * ClientAccess.CacheCapacity; i++)
        {
            Assert.Equal(i % 2 == 0, access.MayRead(i % 2 == 0 ? $"devices/d1/{i}" : $"devices/d2/{i}"));
        }

        Assert.True(access.MayRead("devices/d1/0"));
        Assert.False(access.MayRead("devices/d2/1"));
    }

    internal static MqttMetrics Metrics() =>
        new(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>());

    private static ClientAccess Access(string file, string clientId, string? userName, IReadOnlyList<AccessRule>? connectionRules = null) =>
        new(new AclRuleSource(AclFile.Parse(file)), clientId, userName, connectionRules);
}
