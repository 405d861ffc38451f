using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway.Admin;

public sealed class ApiKeyTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("api-keys-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_key_file_holds_names_and_hashes_and_finds_the_name_of_a_presented_key()
    {
        var (alice, bob) = (ApiKeySet.NewKey(), ApiKeySet.NewKey());
        Assert.NotEqual(alice, bob);
        Assert.True(alice.Length >= 43, alice);
        var keys = ApiKeySet.Parse($"# admin keys\n\nalice:{ApiKeySet.Hash(alice)}\r\n  bob : {ApiKeySet.Hash(bob).ToUpperInvariant()}\n");

        Assert.Equal(["alice", "bob"], keys.Names);
        Assert.Equal("alice", keys.Find(alice));
        Assert.Equal("bob", keys.Find(bob));
        Assert.Null(keys.Find(alice + "x"));
        Assert.Null(keys.Find(string.Empty));
        Assert.Null(keys.Find(ApiKeySet.Hash(alice)));
    }

    [Theory]
    [InlineData("alice", "line 1")]
    [InlineData("alice:abc", "line 1")]
    [InlineData(":0000000000000000000000000000000000000000000000000000000000000000", "line 1")]
    [InlineData("# c\nalice:zz00000000000000000000000000000000000000000000000000000000000000", "line 2")]
    [InlineData("a:0000000000000000000000000000000000000000000000000000000000000000\na:1111111111111111111111111111111111111111111111111111111111111111", "appears twice")]
    public void A_bad_line_is_refused_naming_it(string text, string expected)
    {
        var error = Assert.Throws<FormatException>(() => ApiKeySet.Parse(text));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_key_file_only_loopback_callers_are_let_in()
    {
        Assert.Equal("loopback", AdminAccess.Decide(null, IPAddress.Loopback, null, null).Caller);
        Assert.Equal("loopback", AdminAccess.Decide(null, IPAddress.IPv6Loopback, null, null).Caller);
        Assert.Equal("loopback", AdminAccess.Decide(null, IPAddress.Loopback.MapToIPv6(), null, null).Caller);

        var refused = AdminAccess.Decide(null, IPAddress.Parse("10.1.2.3"), "Bearer anything", null);
        Assert.Equal(AdminRefusal.NotLoopback, refused.Refusal);
        Assert.Equal(403, refused.Refusal!.Value.Status());
        Assert.Equal(AdminRefusal.NotLoopback, AdminAccess.Decide(null, null, null, null).Refusal);
    }

    [Fact]
    public void With_a_key_file_every_caller_needs_a_key_in_either_header()
    {
        var key = ApiKeySet.NewKey();
        var keys = ApiKeySet.Parse($"ops:{ApiKeySet.Hash(key)}");

        Assert.Equal("ops", AdminAccess.Decide(keys, IPAddress.Parse("10.1.2.3"), $"Bearer {key}", null).Caller);
        Assert.Equal("ops", AdminAccess.Decide(keys, IPAddress.Parse("10.1.2.3"), $"bearer  {key} ", null).Caller);
        Assert.Equal("ops", AdminAccess.Decide(keys, IPAddress.Parse("10.1.2.3"), null, key).Caller);

        // Loopback is no exception once keys exist.
        Assert.Equal(AdminRefusal.MissingKey, AdminAccess.Decide(keys, IPAddress.Loopback, null, null).Refusal);
        Assert.Equal(AdminRefusal.MissingKey, AdminAccess.Decide(keys, IPAddress.Loopback, "Basic abc", null).Refusal);
        Assert.Equal(AdminRefusal.MissingKey, AdminAccess.Decide(keys, IPAddress.Loopback, "Bearer ", null).Refusal);
        Assert.Equal(AdminRefusal.BadKey, AdminAccess.Decide(keys, IPAddress.Loopback, "Bearer " + key[..^1], null).Refusal);
        Assert.Equal(AdminRefusal.BadKey, AdminAccess.Decide(keys, IPAddress.Loopback, null, "wrong").Refusal);
        Assert.Equal(401, AdminRefusal.BadKey.Status());
    }

    [Fact]
    public void The_store_reads_the_file_again_when_it_changes_and_keeps_the_old_keys_when_the_new_text_is_bad()
    {
        var path = Path.Combine(_directory, "keys");
        var (first, second) = (ApiKeySet.NewKey(), ApiKeySet.NewKey());
        File.WriteAllText(path, $"first:{ApiKeySet.Hash(first)}\n");
        File.SetLastWriteTimeUtc(path, new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        var time = new FakeTimeProvider();
        var store = new ApiKeyStore(Options.Create(new HttpEndpointOptions { ApiKeysFile = path }), time, NullLogger<ApiKeyStore>.Instance);
        Assert.Equal("first", store.Current!.Find(first));

        File.AppendAllText(path, $"second:{ApiKeySet.Hash(second)}\n");
        File.SetLastWriteTimeUtc(path, new DateTime(2026, 1, 1, 0, 1, 0, DateTimeKind.Utc));
        Assert.Null(store.Current!.Find(second));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal("second", store.Current!.Find(second));

        File.WriteAllText(path, "broken");
        File.SetLastWriteTimeUtc(path, new DateTime(2026, 1, 1, 0, 2, 0, DateTimeKind.Utc));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal("second", store.Current!.Find(second));
    }

    [Fact]
    public void No_key_file_means_no_keys_and_a_bad_one_stops_the_start_naming_the_setting()
    {
        var none = new ApiKeyStore(Options.Create(new HttpEndpointOptions()), TimeProvider.System, NullLogger<ApiKeyStore>.Instance);
        Assert.Null(none.Current);

        var validator = new HttpEndpointOptionsValidator();
        var missing = validator.Validate(null, new HttpEndpointOptions { ApiKeysFile = Path.Combine(_directory, "absent") });
        Assert.True(missing.Failed);
        Assert.Contains("Http:ApiKeysFile", missing.FailureMessage, StringComparison.Ordinal);

        var bad = Path.Combine(_directory, "bad");
        File.WriteAllText(bad, "no hash here\n");
        var badResult = validator.Validate(null, new HttpEndpointOptions { ApiKeysFile = bad });
        Assert.True(badResult.Failed);
        Assert.Contains("Http:ApiKeysFile", badResult.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("line 1", badResult.FailureMessage, StringComparison.Ordinal);

        Assert.False(validator.Validate(null, new HttpEndpointOptions()).Failed);
    }
}
