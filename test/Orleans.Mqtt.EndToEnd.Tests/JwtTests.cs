using System.Security.Cryptography;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// JSON Web Tokens in the CONNECT password against the real broker: every key source (secret, PEM public key, JWKS file,
/// JWKS URL), the checks that refuse a token, key rotation, the ACL claim, and the disconnect when a token expires.
/// </summary>
public sealed class JwtTests(JwtTests.Fixture fixture) : IClassFixture<JwtTests.Fixture>
{
    private BrokerProcess Broker => fixture.Broker;

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task Valid_tokens_from_every_key_source_connect_as_their_subject(MqttProtocolVersion version)
    {
        var sources = new (string Name, Microsoft.IdentityModel.Tokens.SigningCredentials Credentials)[]
        {
            ("hs256", TestTokens.Hmac(Fixture.Secret)),
            ("rs256-pem", TestTokens.Rsa(fixture.PemKey)),
            ("es256-jwks-file", TestTokens.Ecdsa(fixture.FileKey, Fixture.FileKeyId)),
            ("es256-jwks-url", TestTokens.Ecdsa(fixture.UrlKey, Fixture.UrlKeyId)),
        };
        foreach (var (name, credentials) in sources)
        {
            var clientId = $"jwt-{name}-{Guid.NewGuid():N}";
            var subject = $"device-{name}-{(int)version}";
            using var client = new MqttClientFactory().CreateMqttClient();
            var result = await client.ConnectAsync(Options(clientId, TestTokens.Create(credentials, subject, clientId), version));
            Assert.True(result.ResultCode == MqttClientConnectResultCode.Success, $"{name}: {result.ResultCode} {result.ReasonString}");
            var line = await Broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains(" is user ", StringComparison.Ordinal));
            Assert.Contains($"is user '{subject}' (Jwt", line, StringComparison.Ordinal);
            await client.DisconnectAsync();
        }
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task Expired_forged_misaddressed_and_borrowed_tokens_are_refused(MqttProtocolVersion version)
    {
        var good = TestTokens.Hmac(Fixture.Secret);
        var cases = new (string Name, Func<string, string> Token, string Logged)[]
        {
            ("expired", id => TestTokens.Create(good, "device-x", id, expires: DateTime.UtcNow.AddMinutes(-5), notBefore: DateTime.UtcNow.AddMinutes(-10)), "token expired"),
            ("forged", id => TestTokens.Create(TestTokens.Hmac(new string('k', 40)), "device-x", id), "signature does not verify"),
            ("audience", id => TestTokens.Create(good, "device-x", id, audience: "another-service"), "wrong audience"),
            ("borrowed", _ => TestTokens.Create(good, "device-x", "some-other-client"), "token is not for client id"),
            ("subject", id => TestTokens.Create(good, "device-x", id), "is not the token's"),
        };
        var before = await Broker.GetCounterAsync("mqtt_connections_refused_total", "reason=\"bad_credentials\"");
        foreach (var (name, token, logged) in cases)
        {
            var clientId = $"jwt-bad-{name}-{Guid.NewGuid():N}";

            // The last case claims a user name the token does not name.
            var options = Options(clientId, token(clientId), version, userName: name == "subject" ? "device-y" : null);
            using var client = new MqttClientFactory().CreateMqttClient();
            var result = await client.ConnectAsync(options);
            Assert.True(result.ResultCode == MqttClientConnectResultCode.BadUserNameOrPassword, $"{name}: {result.ResultCode}");
            await Broker.WaitForOutputAsync(l => l.Contains("refused (bad_credentials)", StringComparison.Ordinal) && l.Contains($"client '{clientId}'", StringComparison.Ordinal) && l.Contains(logged, StringComparison.Ordinal));
        }

        Assert.True(await Broker.GetCounterAsync("mqtt_connections_refused_total", "reason=\"bad_credentials\"") >= before + cases.Length);
    }

    [Fact]
    public async Task A_replaced_jwks_file_is_read_again()
    {
        using var next = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var clientId = "jwt-file-rotation-" + Guid.NewGuid().ToString("N");
        var newToken = TestTokens.Create(TestTokens.Ecdsa(next, "file-next"), "device-rotated", clientId);
        Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, await ConnectCodeAsync(clientId, newToken));

        await fixture.ReplaceJwksFileAsync(TestTokens.KeySet((next, "file-next")));

        Assert.Equal(MqttClientConnectResultCode.Success, await ConnectCodeAsync(clientId, newToken));

        // The key the file no longer holds no longer signs.
        var oldToken = TestTokens.Create(TestTokens.Ecdsa(fixture.FileKey, Fixture.FileKeyId), "device-old", clientId);
        Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, await ConnectCodeAsync(clientId, oldToken));
        await fixture.ReplaceJwksFileAsync(TestTokens.KeySet((fixture.FileKey, Fixture.FileKeyId)));
    }

    [Fact]
    public async Task A_jwks_url_is_fetched_again_for_a_key_id_it_did_not_have()
    {
        using var next = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var clientId = "jwt-url-rotation-" + Guid.NewGuid().ToString("N");
        var newToken = TestTokens.Create(TestTokens.Ecdsa(next, "url-next"), "device-url-rotated", clientId);
        var fetches = fixture.Jwks.Requests;

        fixture.Jwks.Serve(TestTokens.KeySet((fixture.UrlKey, Fixture.UrlKeyId), (next, "url-next")));

        Assert.Equal(MqttClientConnectResultCode.Success, await ConnectCodeAsync(clientId, newToken));
        Assert.True(fixture.Jwks.Requests > fetches, "the unknown key id did not make the broker fetch the key set");
    }

    [Fact]
    public async Task Acl_claims_become_the_connections_access_rules()
    {
        var clientId = "jwt-acl-" + Guid.NewGuid().ToString("N");
        var acl = new Dictionary<string, object>
        {
            ["acl"] = new Dictionary<string, object>
            {
                ["pub"] = new List<object> { "devices/%c/telemetry" },
                ["sub"] = new List<object> { "devices/%c/cmd/#", "fleet/broadcast" },
            },
        };
        var token = TestTokens.Create(TestTokens.Hmac(Fixture.Secret), "device-acl", clientId, extraClaims: acl);
        Assert.Equal(MqttClientConnectResultCode.Success, await ConnectCodeAsync(clientId, token));
        var line = await Broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains(" is user ", StringComparison.Ordinal));
        Assert.Contains("3 access rules from its credentials", line, StringComparison.Ordinal);

        // A claim that is not a list of topic filters makes the token invalid rather than granting something else.
        var broken = new Dictionary<string, object> { ["acl"] = new Dictionary<string, object> { ["pub"] = "devices/#" } };
        var brokenToken = TestTokens.Create(TestTokens.Hmac(Fixture.Secret), "device-acl", clientId, extraClaims: broken);
        Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, await ConnectCodeAsync(clientId, brokenToken));
    }

    [Fact]
    public async Task Acl_claims_confine_the_connection_to_its_topics_without_an_acl_file()
    {
        var device = "jwt-confined-" + Guid.NewGuid().ToString("N");
        var other = "jwt-other-" + Guid.NewGuid().ToString("N");
        var deviceToken = TestTokens.Create(TestTokens.Hmac(Fixture.Secret), "device-confined", device, extraClaims: new Dictionary<string, object>
        {
            ["acl"] = new Dictionary<string, object>
            {
                ["pub"] = new List<object> { "devices/%c/telemetry" },
                ["sub"] = new List<object> { "devices/%c/cmd/#" },
            },
        });
        var backend = "jwt-backend-" + Guid.NewGuid().ToString("N");
        var backendToken = TestTokens.Create(TestTokens.Hmac(Fixture.Secret), "backend", backend, extraClaims: new Dictionary<string, object>
        {
            ["acl"] = new Dictionary<string, object> { ["pub"] = new List<object> { "devices/+/cmd/#" } },
        });

        using var deviceClient = new MqttClientFactory().CreateMqttClient();
        var received = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var marker = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        deviceClient.ApplicationMessageReceivedAsync += e =>
        {
            received.Enqueue(e.ApplicationMessage.Topic);
            if (e.ApplicationMessage.Topic.EndsWith("/marker", StringComparison.Ordinal))
            {
                marker.TrySetResult();
            }

            return Task.CompletedTask;
        };
        Assert.Equal(MqttClientConnectResultCode.Success, (await deviceClient.ConnectAsync(Options(device, deviceToken, MqttProtocolVersion.V500))).ResultCode);

        // Its own commands: granted; another device's: 0x87; everything: granted, but only its own topics arrive.
        var suback = await deviceClient.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter($"devices/{device}/cmd/#", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter($"devices/{other}/cmd/#", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter("#", MqttQualityOfServiceLevel.AtLeastOnce)
            .Build());
        Assert.Equal(
            [MqttClientSubscribeResultCode.GrantedQoS1, MqttClientSubscribeResultCode.NotAuthorized, MqttClientSubscribeResultCode.GrantedQoS1],
            suback.Items.Select(i => i.ResultCode).ToArray());

        // Its own telemetry only.
        var own = await deviceClient.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{device}/telemetry").WithPayload("t").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal(MqttClientPublishReasonCode.Success, own.ReasonCode);
        var foreign = await deviceClient.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{other}/telemetry").WithPayload("t").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal(MqttClientPublishReasonCode.NotAuthorized, foreign.ReasonCode);

        using var backendClient = new MqttClientFactory().CreateMqttClient();
        Assert.Equal(MqttClientConnectResultCode.Success, (await backendClient.ConnectAsync(Options(backend, backendToken, MqttProtocolVersion.V500))).ResultCode);
        foreach (var topic in new[] { $"devices/{other}/cmd/secret", $"devices/{device}/cmd/reboot", $"devices/{device}/cmd/marker" })
        {
            var ack = await backendClient.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("c").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            Assert.Equal(MqttClientPublishReasonCode.Success, ack.ReasonCode);
        }

        await marker.Task.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.DoesNotContain(received, t => !t.StartsWith($"devices/{device}/cmd/", StringComparison.Ordinal));
        Assert.Contains($"devices/{device}/cmd/reboot", received);
        await backendClient.DisconnectAsync();
        await deviceClient.DisconnectAsync();
    }

    [Fact]
    public async Task A_connection_is_disconnected_with_0xA0_when_its_token_expires()
    {
        var clientId = "jwt-expiry-" + Guid.NewGuid().ToString("N");

        // exp has whole seconds: the token runs out 2 to 3 seconds from now.
        var expires = DateTime.UtcNow.AddSeconds(3);
        var expiresAt = DateTimeOffset.FromUnixTimeSeconds(new DateTimeOffset(expires).ToUnixTimeSeconds());
        var token = TestTokens.Create(TestTokens.Hmac(Fixture.Secret), "device-expiring", clientId, expires: expires);
        await using var client = await RawMqttClient.ConnectAsync(Broker.MqttPort);
        await client.SendAsync(RawMqttClient.Connect(5, clientId, password: token));

        var packets = await client.ReadUntilClosedAsync(TimeSpan.FromSeconds(15));
        var closedAt = DateTimeOffset.UtcNow;
        Assert.Equal(2, packets.Count);
        Assert.Equal((byte)0x20, packets[0].Header);
        Assert.Equal((byte)0x00, packets[0].Body[1]);
        Assert.Equal((byte)0xE0, packets[1].Header);
        Assert.Equal((byte)0xA0, packets[1].Body[0]);
        Assert.True(closedAt >= expiresAt, $"closed at {closedAt:O}, before the token's exp {expiresAt:O}");
        await Broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains("credentials_expired", StringComparison.Ordinal));
    }

    private async Task<MqttClientConnectResultCode> ConnectCodeAsync(string clientId, string token)
    {
        using var client = new MqttClientFactory().CreateMqttClient();
        var result = await client.ConnectAsync(Options(clientId, token, MqttProtocolVersion.V500));
        if (client.IsConnected)
        {
            await client.DisconnectAsync();
        }

        return result.ResultCode;
    }

    private MqttClientOptions Options(string clientId, string token, MqttProtocolVersion version, string? userName = null) =>
        new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", Broker.MqttPort)
            .WithProtocolVersion(version)
            .WithClientId(clientId)
            .WithCredentials(userName ?? string.Empty, token)
            .WithTimeout(TimeSpan.FromSeconds(10))
            .Build();

    /// <summary>One broker for the class: tokens checked with a secret, a PEM key, a JWKS file and a JWKS URL.</summary>
    public sealed class Fixture : IAsyncLifetime
    {
        public const string Secret = "a shared secret of more than 32 bytes for HS256";
        public const string FileKeyId = "file-1";
        public const string UrlKeyId = "url-1";

        private string _directory = null!;
        private string _jwksFile = null!;

        public BrokerProcess Broker { get; private set; } = null!;

        public JwksServer Jwks { get; } = new();

        public RSA PemKey { get; } = RSA.Create(2048);

        public ECDsa FileKey { get; } = ECDsa.Create(ECCurve.NamedCurves.nistP256);

        public ECDsa UrlKey { get; } = ECDsa.Create(ECCurve.NamedCurves.nistP256);

        public async Task InitializeAsync()
        {
            _directory = BrokerProcess.TempDirectory();
            var pemFile = Path.Combine(_directory, "token-key.pem");
            _jwksFile = Path.Combine(_directory, "jwks.json");
            await File.WriteAllTextAsync(pemFile, PemKey.ExportSubjectPublicKeyInfoPem());
            await File.WriteAllTextAsync(_jwksFile, TestTokens.KeySet((FileKey, FileKeyId)));
            Jwks.Serve(TestTokens.KeySet((UrlKey, UrlKeyId)));
            Broker = await BrokerProcess.StartAsync(new Dictionary<string, string>
            {
                ["Mqtt__AllowAnonymous"] = "false",
                ["Mqtt__Jwt__Enabled"] = "true",
                ["Mqtt__Jwt__Secret"] = Secret,
                ["Mqtt__Jwt__PublicKeyFile"] = pemFile,
                ["Mqtt__Jwt__JwksFile"] = _jwksFile,
                ["Mqtt__Jwt__JwksUrl"] = Jwks.Url,
                ["Mqtt__Jwt__JwksMinRefreshInterval"] = "00:00:00",
                ["Mqtt__Jwt__Issuer"] = TestTokens.Issuer,
                ["Mqtt__Jwt__Audience"] = TestTokens.Audience,
                ["Mqtt__Jwt__ClientIdClaim"] = "client_id",
                ["Mqtt__Jwt__ClockSkew"] = "00:00:00",
            });
        }

        /// <summary>Writes a new JWKS file in place of the old (a new file renamed over it, as a deployment would).</summary>
        public async Task ReplaceJwksFileAsync(string json)
        {
            var temporary = _jwksFile + ".new";
            await File.WriteAllTextAsync(temporary, json);
            File.Move(temporary, _jwksFile, overwrite: true);
        }

        public async Task DisposeAsync()
        {
            await Broker.DisposeAsync();
            await Jwks.DisposeAsync();
            PemKey.Dispose();
            FileKey.Dispose();
            UrlKey.Dispose();
            Directory.Delete(_directory, recursive: true);
        }
    }
}
