using System.Text;
using Orleans.Mqtt.Security;
using Xunit;

namespace Orleans.Mqtt.Tests.Security;

public sealed class PasswordHasherTests
{
    // Low on purpose: these tests check the format and the comparison, not the cost.
    private const int FastIterations = 1000;

    [Fact]
    public void DefaultIterationsRoundTrip()
    {
        var encoded = PasswordHasher.Hash("correct horse battery staple");

        Assert.StartsWith("$pbkdf2-sha512$210000$", encoded);
        Assert.True(PasswordHasher.DefaultIterations >= 210_000);
        Assert.True(PasswordHasher.Verify("correct horse battery staple"u8, encoded));
        Assert.False(PasswordHasher.Verify("correct horse battery stapler"u8, encoded));
    }

    [Theory]
    [InlineData("secret")]
    [InlineData("")]
    [InlineData("p\u00e4ssw\u00f6rd \U0001F511")]
    public void RoundTrip(string password)
    {
        var encoded = PasswordHasher.Hash(password, FastIterations);

        var parts = encoded.Split('$');
        Assert.Equal(["", "pbkdf2-sha512", "1000"], parts[..3]);
        Assert.Equal(PasswordHasher.SaltLength, Convert.FromBase64String(parts[3]).Length);
        Assert.Equal(PasswordHasher.HashLength, Convert.FromBase64String(parts[4]).Length);
        Assert.True(PasswordHasher.Verify(Encoding.UTF8.GetBytes(password), encoded));
    }

    [Fact]
    public void WrongPasswordFails()
    {
        var encoded = PasswordHasher.Hash("secret", FastIterations);

        Assert.False(PasswordHasher.Verify("Secret"u8, encoded));
        Assert.False(PasswordHasher.Verify("secret "u8, encoded));
        Assert.False(PasswordHasher.Verify(""u8, encoded));
    }

    [Fact]
    public void SamePasswordGetsDifferentSalts()
    {
        var first = PasswordHasher.Hash("secret", FastIterations);
        var second = PasswordHasher.Hash("secret", FastIterations);

        Assert.NotEqual(first.Split('$')[3], second.Split('$')[3]);
        Assert.NotEqual(first, second);
        Assert.True(PasswordHasher.Verify("secret"u8, first));
        Assert.True(PasswordHasher.Verify("secret"u8, second));
    }

    [Fact]
    public void MalformedEncodingsFail()
    {
        var valid = PasswordHasher.Hash("secret", FastIterations);
        var parts = valid.Split('$');
        var salt = parts[3];
        var hash = parts[4];
        string[] malformed =
        [
            "",
            "secret",
            "$pbkdf2-sha512$",
            "$pbkdf2-sha512$1000$",
            $"$pbkdf2-sha512$1000${salt}",
            $"$pbkdf2-sha512$1000${salt}$",
            $"$pbkdf2-sha256$1000${salt}${hash}",
            $"$PBKDF2-SHA512$1000${salt}${hash}",
            $"$pbkdf2-sha512$0${salt}${hash}",
            $"$pbkdf2-sha512$-1000${salt}${hash}",
            $"$pbkdf2-sha512$01000${salt}${hash}",
            $"$pbkdf2-sha512$ 1000${salt}${hash}",
            $"$pbkdf2-sha512$99999999999${salt}${hash}",
            $"$pbkdf2-sha512$abc${salt}${hash}",
            $"$pbkdf2-sha512$1000$not*base64${hash}",
            $"$pbkdf2-sha512$1000${salt}$not*base64",
            $"$pbkdf2-sha512$1000$AAAA${hash}",
            $"$pbkdf2-sha512$1000${salt}${Convert.ToBase64String(new byte[32])}",
            $"$pbkdf2-sha512$1000${salt}${Convert.ToBase64String(new byte[65])}",
            $"$pbkdf2-sha512$1000${salt}${hash}$extra",
            $"x{valid}",
        ];

        foreach (var encoded in malformed)
        {
            Assert.False(PasswordHasher.Verify("secret"u8, encoded), encoded);
        }

        Assert.True(PasswordHasher.Verify("secret"u8, valid));
    }

    [Fact]
    public void RejectsNonPositiveIterations()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PasswordHasher.Hash("secret", 0));
    }
}
