using Orleans.Mqtt.Security;
using Xunit;

namespace Orleans.Mqtt.Tests.Security;

public sealed class UsersFileTests : IDisposable
{
    private const int FastIterations = 1000;

    private readonly string _directory = Directory.CreateTempSubdirectory("orleans-mqtt-users-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void LoadSkipsCommentsAndBlankLines()
    {
        var path = Write(
            "# broker users",
            "",
            "alice:" + PasswordHasher.Hash("alice-pw", FastIterations),
            "   ",
            "  # indented comment",
            "bob : " + PasswordHasher.Hash("bob-pw", FastIterations) + "  ");

        var users = UsersFile.Load(path);

        Assert.Equal(2, users.Count);
        Assert.True(users.Verify("alice", "alice-pw"u8));
        Assert.True(users.Verify("bob", "bob-pw"u8));
        Assert.False(users.Verify("alice", "bob-pw"u8));
        Assert.False(users.Verify("Alice", "alice-pw"u8));
    }

    [Fact]
    public void UnknownUserFails()
    {
        var path = Write("alice:" + PasswordHasher.Hash("alice-pw", FastIterations));

        Assert.False(UsersFile.Load(path).Verify("mallory", "alice-pw"u8));
    }

    [Theory]
    [InlineData("no separator here", "expected 'username:encoded-hash'")]
    [InlineData(":$pbkdf2-sha512$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA", "the username is empty")]
    [InlineData("carol:plaintext", "user 'carol' is not a valid")]
    [InlineData("alice:DUPLICATE", "appears more than once")]
    public void LoadNamesFileAndLineOfMalformedLine(string badLine, string problem)
    {
        var alice = "alice:" + PasswordHasher.Hash("alice-pw", FastIterations);
        var path = Write("# header", alice, badLine.Replace("DUPLICATE", alice[6..], StringComparison.Ordinal));

        var error = Assert.Throws<FormatException>(() => UsersFile.Load(path));

        Assert.Contains(path, error.Message);
        Assert.Contains("line 3", error.Message);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void AddOrUpdateCreatesTheFile()
    {
        var path = Path.Combine(_directory, "nested", "users");

        UsersFile.AddOrUpdate(path, "alice", "alice-pw", FastIterations);

        var users = UsersFile.Load(path);
        Assert.Equal(1, users.Count);
        Assert.True(users.Verify("alice", "alice-pw"u8));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
    }

    [Fact]
    public void AddOrUpdateReplacesAnExistingUserAndKeepsTheRest()
    {
        var path = Write("# keep me", "alice:" + PasswordHasher.Hash("old-pw", FastIterations));
        UsersFile.AddOrUpdate(path, "bob", "bob-pw", FastIterations);

        UsersFile.AddOrUpdate(path, "alice", "new-pw", FastIterations);

        var lines = File.ReadAllLines(path);
        Assert.Equal("# keep me", lines[0]);
        Assert.StartsWith("alice:", lines[1]);
        Assert.StartsWith("bob:", lines[2]);
        Assert.Equal(3, lines.Length);
        Assert.Empty(Directory.GetFiles(_directory, "*.tmp"));

        var users = UsersFile.Load(path);
        Assert.Equal(2, users.Count);
        Assert.True(users.Verify("alice", "new-pw"u8));
        Assert.False(users.Verify("alice", "old-pw"u8));
        Assert.True(users.Verify("bob", "bob-pw"u8));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a:b")]
    [InlineData("#admin")]
    [InlineData(" alice")]
    [InlineData("alice\n")]
    public void AddOrUpdateRejectsUsernamesTheFileCannotHold(string username)
    {
        var path = Path.Combine(_directory, "users");

        Assert.Throws<ArgumentException>(() => UsersFile.AddOrUpdate(path, username, "pw", FastIterations));
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void RepeatedVerifyWithTheSamePasswordSkipsTheSlowHash()
    {
        var users = UsersFile.Load(Write("alice:" + PasswordHasher.Hash("alice-pw", FastIterations)));

        Assert.True(users.Verify("alice", "alice-pw"u8));
        Assert.Equal(1, users.SlowVerifications);
        Assert.True(users.Verify("alice", "alice-pw"u8));
        Assert.True(users.Verify("alice", "alice-pw"u8));
        Assert.Equal(1, users.SlowVerifications);

        // A different password is never answered from the cache.
        Assert.False(users.Verify("alice", "guess"u8));
        Assert.Equal(2, users.SlowVerifications);
        Assert.True(users.Verify("alice", "alice-pw"u8));
        Assert.Equal(2, users.SlowVerifications);
    }

    [Fact]
    public void FailedVerifyIsNotCached()
    {
        var users = UsersFile.Load(Write("alice:" + PasswordHasher.Hash("alice-pw", FastIterations)));

        Assert.False(users.Verify("alice", "guess"u8));
        Assert.False(users.Verify("alice", "guess"u8));
        Assert.Equal(2, users.SlowVerifications);
    }

    private string Write(params string[] lines)
    {
        var path = Path.Combine(_directory, "users");
        File.WriteAllLines(path, lines);
        return path;
    }
}
