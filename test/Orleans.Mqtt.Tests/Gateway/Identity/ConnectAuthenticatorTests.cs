using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Security;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway.Identity;

public sealed class ConnectAuthenticatorTests : IDisposable
{
    private const string Secret = "a shared secret of more than 32 bytes for HS256";
    private readonly string _directory = Directory.CreateTempSubdirectory("orleans-mqtt-identity-").FullName;
    private readonly string _usersFile;

    public ConnectAuthenticatorTests()
    {
        _usersFile = Path.Combine(_directory, "users");
        UsersFile.AddOrUpdate(_usersFile, "alice", "alice-pw", iterations: 1000);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task A_valid_token_names_the_user_carries_its_rules_and_expires_with_the_clock_skew()
    {
        using var authenticator = Authenticator();
        var expires = DateTime.UtcNow.AddMinutes(10);
        var token = Token("device-7", expires, """{"pub":["devices/%c/up"]}""");

        var identity = await authenticator.AuthenticateAsync("client-7", null, Encoding.UTF8.GetBytes(token), null);

        Assert.Equal(AuthResult.Ok, identity.Result);
        Assert.Equal("device-7", identity.UserName);
        Assert.Equal(IdentitySource.Jwt, identity.Source);
        Assert.Equal([new AccessRule(AccessKind.Write, "devices/%c/up")], identity.Rules);
        var exp = DateTimeOffset.FromUnixTimeSeconds(new DateTimeOffset(expires).ToUnixTimeSeconds());
        Assert.Equal(exp + TimeSpan.FromSeconds(5), identity.ExpiresAt);
    }

    [Fact]
    public async Task Users_file_passwords_still_work_next_to_tokens_in_either_order()
    {
        foreach (var order in new[] { "jwt,users", "users,jwt" })
        {
            using var authenticator = Authenticator(order);
            var user = await authenticator.AuthenticateAsync("c", "alice", "alice-pw"u8.ToArray(), null);
            Assert.Equal((AuthResult.Ok, "alice", IdentitySource.Users), (user.Result, user.UserName, user.Source));

            // A user name the users file does not hold does not stop a token from deciding, whatever the order.
            var token = await authenticator.AuthenticateAsync("c", "device-7", Encoding.UTF8.GetBytes(Token("device-7", DateTime.UtcNow.AddMinutes(1))), null);
            Assert.Equal((AuthResult.Ok, "device-7", IdentitySource.Jwt), (token.Result, token.UserName, token.Source));

            Assert.Equal(AuthResult.BadCredentials, (await authenticator.AuthenticateAsync("c", "alice", "wrong"u8.ToArray(), null)).Result);
            Assert.Equal(AuthResult.BadCredentials, (await authenticator.AuthenticateAsync("c", "mallory", "alice-pw"u8.ToArray(), null)).Result);
        }
    }

    [Fact]
    public async Task A_token_for_another_user_or_signed_with_another_key_is_refused()
    {
        using var authenticator = Authenticator();
        var token = Encoding.UTF8.GetBytes(Token("device-7", DateTime.UtcNow.AddMinutes(1)));
        var claimed = await authenticator.AuthenticateAsync("c", "device-8", token, null);
        Assert.Equal(AuthResult.BadCredentials, claimed.Result);
        Assert.Contains("is not the token's 'device-7'", claimed.Detail, StringComparison.Ordinal);

        var forged = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Subject = new System.Security.Claims.ClaimsIdentity([new System.Security.Claims.Claim("sub", "device-7")]),
            Expires = DateTime.UtcNow.AddMinutes(1),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(new byte[32]), SecurityAlgorithms.HmacSha256),
        });
        var refused = await authenticator.AuthenticateAsync("c", null, Encoding.UTF8.GetBytes(forged), null);
        Assert.Equal(AuthResult.BadCredentials, refused.Result);
        Assert.Contains("signature", refused.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_user_name_nobody_verified_is_not_the_connections_user_name()
    {
        // No users file and no tokens: credentials count for nothing, so the claimed name must not either.
        var options = new MqttGatewayOptions { AllowAnonymous = true };
        using var authenticator = new ConnectAuthenticator(options, TimeProvider.System, NullLoggerFactory.Instance);

        var identity = await authenticator.AuthenticateAsync("c", "admin", "whatever"u8.ToArray(), null);

        Assert.Equal(AuthResult.Ok, identity.Result);
        Assert.Null(identity.UserName);
        Assert.Equal(IdentitySource.Anonymous, identity.Source);
    }

    [Fact]
    public async Task A_client_certificate_names_the_user_before_the_connects_credentials()
    {
        var options = Options("certificate,users");
        options.Tls = new TlsListenerOptions { Port = 8883, CertificateFile = "server.crt", ClientCertificateMode = TlsClientCertificateMode.Optional };
        using var authenticator = new ConnectAuthenticator(options, TimeProvider.System, NullLoggerFactory.Instance);
        using var certificate = SelfSigned("CN=device-9, O=Fleet");

        var identity = await authenticator.AuthenticateAsync("c", "alice", "alice-pw"u8.ToArray(), certificate);
        Assert.Equal((AuthResult.Ok, "device-9", IdentitySource.Certificate), (identity.Result, identity.UserName, identity.Source));

        // Without a certificate the next source decides.
        var withoutCertificate = await authenticator.AuthenticateAsync("c", "alice", "alice-pw"u8.ToArray(), null);
        Assert.Equal(IdentitySource.Users, withoutCertificate.Source);
    }

    [Theory]
    [InlineData("certificate,jwt,users", true, null)]
    [InlineData(" JWT , users ", true, null)]
    [InlineData("jwt,password", false, "'password'")]
    [InlineData("jwt,jwt", false, "twice")]
    public void The_order_setting_is_read_or_refused_naming_it(string text, bool valid, string? expected)
    {
        Assert.Equal(valid, ConnectAuthenticator.TryParseOrder(text, out _, out var error));
        if (expected is not null)
        {
            Assert.Contains("Mqtt:AuthenticationOrder", error, StringComparison.Ordinal);
            Assert.Contains(expected, error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Certificate_names_come_from_the_common_name_or_the_subject_alternative_names()
    {
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("device-1.fleet.example");
        san.AddEmailAddress("device-1@fleet.example");
        san.AddUri(new Uri("urn:fleet:device-1"));
        using var certificate = SelfSigned("CN=device-1, O=Fleet", san.Build());

        Assert.Equal("device-1", ClientCertificateNames.Get(certificate, ClientCertificateNames.CommonName));
        Assert.Equal("device-1.fleet.example", ClientCertificateNames.Get(certificate, ClientCertificateNames.SanDns));
        Assert.Equal("device-1@fleet.example", ClientCertificateNames.Get(certificate, ClientCertificateNames.SanEmail));
        Assert.Equal("urn:fleet:device-1", ClientCertificateNames.Get(certificate, ClientCertificateNames.SanUri));

        using var bare = SelfSigned("O=Fleet");
        Assert.Null(ClientCertificateNames.Get(bare, ClientCertificateNames.CommonName));
        Assert.Null(ClientCertificateNames.Get(bare, ClientCertificateNames.SanEmail));
    }

    private ConnectAuthenticator Authenticator(string order = "certificate,jwt,users") =>
        new(Options(order), TimeProvider.System, NullLoggerFactory.Instance);

    private MqttGatewayOptions Options(string order) => new()
    {
        AllowAnonymous = false,
        UsersFile = _usersFile,
        AuthenticationOrder = order,
        Jwt = new JwtOptions { Enabled = true, Secret = Secret, ClockSkew = TimeSpan.FromSeconds(5) },
    };

    private static string Token(string subject, DateTime expires, string? acl = null)
    {
        var claims = new Dictionary<string, object> { ["sub"] = subject };
        if (acl is not null)
        {
            claims["acl"] = System.Text.Json.JsonDocument.Parse(acl).RootElement;
        }

        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Claims = claims,
            NotBefore = DateTime.UtcNow.AddMinutes(-1),
            IssuedAt = DateTime.UtcNow.AddMinutes(-1),
            Expires = expires,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(Secret)), SecurityAlgorithms.HmacSha256),
        });
    }

    private static X509Certificate2 SelfSigned(string subject, X509Extension? extension = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        if (extension is not null)
        {
            request.CertificateExtensions.Add(extension);
        }

        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }
}
