using System.Text;
using System.Text.Json;
using Orleans.Mqtt.Clustering.Consul;

namespace Orleans.Mqtt.Clustering.Tests;

/// <summary>The exact HTTP requests the Consul membership table sends (no server needed).</summary>
public sealed class ConsulKvRequestsTests
{
    [Fact]
    public async Task Transaction_IsOneTxnOfCheckAndSetWrites_WithBase64ValuesAndIndexes()
    {
        var requests = new ConsulKvRequests(aclToken: null);

        using var request = requests.Transaction(
        [
            new CasPut("orleans-mqtt/c1/version", "7"u8.ToArray(), 41),
            new CasPut("orleans-mqtt/c1/members/127.0.0.1:11111@5", "{\"a\":1}"u8.ToArray(), 0),
        ]);

        Assert.Equal(HttpMethod.Put, request.Method);
        Assert.Equal("v1/txn", request.RequestUri!.ToString());
        Assert.Equal("application/json", request.Content!.Headers.ContentType!.MediaType);
        using var body = JsonDocument.Parse(await request.Content.ReadAsByteArrayAsync());
        var ops = body.RootElement.EnumerateArray().Select(op => op.GetProperty("KV")).ToArray();
        Assert.Equal(2, ops.Length);
        Assert.All(ops, op => Assert.Equal("cas", op.GetProperty("Verb").GetString()));
        Assert.Equal("orleans-mqtt/c1/version", ops[0].GetProperty("Key").GetString());
        Assert.Equal("7", Encoding.UTF8.GetString(ops[0].GetProperty("Value").GetBytesFromBase64()));
        Assert.Equal(41UL, ops[0].GetProperty("Index").GetUInt64());
        Assert.Equal("orleans-mqtt/c1/members/127.0.0.1:11111@5", ops[1].GetProperty("Key").GetString());
        Assert.Equal("{\"a\":1}", Encoding.UTF8.GetString(ops[1].GetProperty("Value").GetBytesFromBase64()));
        Assert.Equal(0UL, ops[1].GetProperty("Index").GetUInt64());
        Assert.False(request.Headers.Contains("X-Consul-Token"));
    }

    [Fact]
    public async Task CasPut_EscapesEachKeySegment_AndCarriesTheIndexAndTheRawValue()
    {
        using var request = new ConsulKvRequests(aclToken: null).CasPut("orleans-mqtt/c1/members/127.0.0.1:11111@5", "v"u8.ToArray(), 1234);

        Assert.Equal(HttpMethod.Put, request.Method);
        Assert.Equal("v1/kv/orleans-mqtt/c1/members/127.0.0.1%3A11111%405?cas=1234", request.RequestUri!.OriginalString);
        Assert.Equal("v", Encoding.UTF8.GetString(await request.Content!.ReadAsByteArrayAsync()));
    }

    [Fact]
    public void FolderRequests_AreRecursive_AndKeepTheTrailingSlash()
    {
        var requests = new ConsulKvRequests(aclToken: null);

        using var read = requests.ReadFolder("orleans-mqtt/c1/");
        using var delete = requests.DeleteFolder("orleans-mqtt/c1/");
        using var casDelete = requests.CasDelete("orleans-mqtt/c1/members/x", 9);

        Assert.Equal(HttpMethod.Get, read.Method);
        Assert.Equal("v1/kv/orleans-mqtt/c1/?recurse=true", read.RequestUri!.OriginalString);
        Assert.Equal(HttpMethod.Delete, delete.Method);
        Assert.Equal("v1/kv/orleans-mqtt/c1/?recurse=true", delete.RequestUri!.OriginalString);
        Assert.Equal(HttpMethod.Delete, casDelete.Method);
        Assert.Equal("v1/kv/orleans-mqtt/c1/members/x?cas=9", casDelete.RequestUri!.OriginalString);
    }

    [Fact]
    public void EveryRequest_CarriesTheAclToken_WhenOneIsSet()
    {
        var requests = new ConsulKvRequests("secret-token");

        using var read = requests.ReadFolder("p/c/");
        using var txn = requests.Transaction([new CasPut("p/c/version", "1"u8.ToArray(), 0)]);

        Assert.Equal("secret-token", Assert.Single(read.Headers.GetValues("X-Consul-Token")));
        Assert.Equal("secret-token", Assert.Single(txn.Headers.GetValues("X-Consul-Token")));
    }
}
