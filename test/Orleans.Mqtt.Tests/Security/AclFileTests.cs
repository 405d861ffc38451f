using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Security;

public sealed class AclFileTests
{
    [Fact]
    public void Topic_lines_before_the_first_user_are_the_anonymous_rules_and_patterns_go_to_everyone()
    {
        var file = AclFile.Parse(string.Join('\n',
            "# fleet rules",
            "topic read public/#",
            "",
            "user alice",
            "topic write alice/out",
            "pattern read devices/%c/#",
            "  topic deny alice/secret  ",
            "user bob",
            "topic bob/#",
            "user alice",
            "topic read alice/in\r"));

        Assert.Equal([new AccessRule(AccessKind.Read, "public/#")], file.Anonymous);
        Assert.Equal(
            [new AccessRule(AccessKind.Write, "alice/out"), new AccessRule(AccessKind.Deny, "alice/secret"), new AccessRule(AccessKind.Read, "alice/in")],
            file.Users["alice"]);
        Assert.Equal([new AccessRule(AccessKind.ReadWrite, "bob/#")], file.Users["bob"]);
        Assert.Equal([new AccessRule(AccessKind.Read, "devices/%c/#")], file.Patterns);
        Assert.Equal(6, file.RuleCount);
    }

    [Fact]
    public void A_topic_with_spaces_is_kept_whole()
    {
        var file = AclFile.Parse("topic read a b/c d");
        Assert.Equal("a b/c d", Assert.Single(file.Anonymous).Filter);
    }

    [Theory]
    [InlineData("topic read a\nuser\ntopic b", 2, "'user' without a user name")]
    [InlineData("topic read", 1, "'topic' without a topic filter")]
    [InlineData("\n\npattern deny", 3, "'pattern' without a topic filter")]
    [InlineData("topic read a/#/b", 1, "'a/#/b' is not a valid topic filter")]
    [InlineData("# ok\npattern write x/%c+/y", 2, "is not a valid topic filter")]
    [InlineData("topic a\nallow a/b", 2, "unknown keyword 'allow'")]
    public void A_bad_line_is_refused_with_its_number(string text, int line, string problem)
    {
        var ex = Assert.Throws<AclFileException>(() => AclFile.Parse(text));
        Assert.Equal(line, ex.Line);
        Assert.Contains(problem, ex.Message, StringComparison.Ordinal);
        Assert.StartsWith($"line {line}: ", ex.Message, StringComparison.Ordinal);
    }
}
