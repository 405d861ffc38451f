using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>Signing keys and tokens for the JWT tests, made with Microsoft.IdentityModel.</summary>
public static class TestTokens
{
    public const string Issuer = "https://issuer.test";
    public const string Audience = "mqtt-fleet";

    /// <summary>A signed token for <paramref name="subject"/> and <paramref name="clientId"/>, valid from <paramref name="notBefore"/> to <paramref name="expires"/>.</summary>
    public static string Create(
        SigningCredentials credentials,
        string subject,
        string clientId,
        DateTime? expires = null,
        DateTime? notBefore = null,
        string audience = Audience,
        IDictionary<string, object>? extraClaims = null)
    {
        var claims = new Dictionary<string, object> { ["sub"] = subject, ["client_id"] = clientId };
        foreach (var (name, value) in extraClaims ?? new Dictionary<string, object>())
        {
            claims[name] = value;
        }

        var from = notBefore ?? DateTime.UtcNow.AddMinutes(-1);
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = audience,
            NotBefore = from,
            IssuedAt = from,
            Expires = expires ?? DateTime.UtcNow.AddHours(1),
            Claims = claims,
            SigningCredentials = credentials,
        });
    }

    public static SigningCredentials Hmac(string secret) =>
        new(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256);

    public static SigningCredentials Rsa(RSA key, string? keyId = null) =>
        new(new RsaSecurityKey(key) { KeyId = keyId }, SecurityAlgorithms.RsaSha256);

    public static SigningCredentials Ecdsa(ECDsa key, string keyId) =>
        new(new ECDsaSecurityKey(key) { KeyId = keyId }, SecurityAlgorithms.EcdsaSha256);

    /// <summary>A JWKS document with the public parts of <paramref name="keys"/> (P-256 keys, ES256).</summary>
    public static string KeySet(params (ECDsa Key, string KeyId)[] keys)
    {
        var entries = keys.Select(k =>
        {
            var p = k.Key.ExportParameters(includePrivateParameters: false);
            return $$"""{"kty":"EC","crv":"P-256","use":"sig","alg":"ES256","kid":"{{k.KeyId}}","x":"{{Base64UrlEncoder.Encode(p.Q.X!)}}","y":"{{Base64UrlEncoder.Encode(p.Q.Y!)}}"}""";
        });
        return $$"""{"keys":[{{string.Join(',', entries)}}]}""";
    }
}
