using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Checks a JSON Web Token carried in the CONNECT password (<c>Mqtt:Jwt</c>) with Microsoft.IdentityModel: signature
/// (<see cref="JwtKeys"/>), <c>exp</c> (required) and <c>nbf</c>, <c>iss</c> and <c>aud</c> when configured, the user name
/// claim, the client id claim when configured, and the ACL claim (<see cref="ClaimAccessRules"/>).
/// </summary>
internal sealed class JwtAuthenticator : IDisposable
{
    private static readonly string[] Algorithms =
    [
        SecurityAlgorithms.HmacSha256, SecurityAlgorithms.HmacSha384, SecurityAlgorithms.HmacSha512,
        SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSha384, SecurityAlgorithms.RsaSha512,
        SecurityAlgorithms.RsaSsaPssSha256, SecurityAlgorithms.RsaSsaPssSha384, SecurityAlgorithms.RsaSsaPssSha512,
        SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.EcdsaSha512,
    ];

    private readonly JwtOptions _options;
    private readonly JsonWebTokenHandler _handler = new();
    private readonly JwtKeys _keys;

    public JwtAuthenticator(JwtOptions options, TimeProvider timeProvider, ILogger logger)
    {
        _options = options;
        _keys = new JwtKeys(options, timeProvider, logger);
    }

    /// <summary>Whether <paramref name="password"/> has the form of a JWT (three base64url parts), so this source decides.</summary>
    public bool IsToken(string password) => _handler.CanReadToken(password);

    /// <summary>Checks <paramref name="token"/> for a CONNECT with <paramref name="clientId"/> and (maybe empty) <paramref name="userName"/>.</summary>
    public async Task<ConnectIdentity> AuthenticateAsync(string clientId, string? userName, string token)
    {
        string? kid;
        try
        {
            kid = _handler.ReadJsonWebToken(token).Kid;
        }
        catch (Exception ex) when (ex is SecurityTokenMalformedException or ArgumentException)
        {
            return Refused(clientId, "malformed token");
        }

        var keys = _keys.Current;
        if (!string.IsNullOrEmpty(kid) && !JwtKeys.HasKeyId(keys, kid) && await _keys.RefreshForUnknownKeyAsync().ConfigureAwait(false))
        {
            // A key id no key has: the JWKS may have been rotated since it was fetched.
            keys = _keys.Current;
        }

        var result = await _handler.ValidateTokenAsync(token, Parameters(keys)).ConfigureAwait(false);
        if (!result.IsValid)
        {
            return Refused(clientId, Describe(result.Exception));
        }

        var jwt = (JsonWebToken)result.SecurityToken;
        using var payload = JsonDocument.Parse(Base64UrlEncoder.DecodeBytes(jwt.EncodedPayload));
        var claims = payload.RootElement;
        var user = StringClaim(claims, _options.UserNameClaim);
        if (string.IsNullOrEmpty(user))
        {
            return Refused(clientId, $"token has no '{_options.UserNameClaim}' claim (Mqtt:Jwt:UserNameClaim)");
        }

        if (!string.IsNullOrEmpty(userName) && !string.Equals(userName, user, StringComparison.Ordinal))
        {
            return Refused(clientId, $"user name '{userName}' is not the token's '{user}'");
        }

        if (!string.IsNullOrEmpty(_options.ClientIdClaim) && !string.Equals(StringClaim(claims, _options.ClientIdClaim), clientId, StringComparison.Ordinal))
        {
            return Refused(clientId, $"token is not for client id '{clientId}' (claim '{_options.ClientIdClaim}')");
        }

        if (!ClaimAccessRules.TryRead(claims, _options.AclClaim, out var rules, out var error))
        {
            return Refused(clientId, error!);
        }

        var expires = new DateTimeOffset(DateTime.SpecifyKind(jwt.ValidTo, DateTimeKind.Utc)) + _options.ClockSkew;
        return new ConnectIdentity(AuthResult.Ok, user, IdentitySource.Jwt, expires, rules);
    }

    public void Dispose() => _keys.Dispose();

    private TokenValidationParameters Parameters(IReadOnlyList<SecurityKey> keys) => new()
    {
        IssuerSigningKeys = keys,
        TryAllIssuerSigningKeys = true,
        RequireSignedTokens = true,
        ValidAlgorithms = Algorithms,
        ValidateIssuer = !string.IsNullOrEmpty(_options.Issuer),
        ValidIssuer = _options.Issuer,
        ValidateAudience = !string.IsNullOrEmpty(_options.Audience),
        ValidAudience = _options.Audience,
        ValidateLifetime = true,
        RequireExpirationTime = true,
        ClockSkew = _options.ClockSkew,
    };

    private static string? StringClaim(JsonElement claims, string name) =>
        claims.ValueKind == JsonValueKind.Object && claims.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static ConnectIdentity Refused(string clientId, string detail) => ConnectIdentity.BadCredentials(IdentitySource.Jwt, $"JWT of client '{clientId}': {detail}");

    // Fixed words rather than the library's messages, which hide their details unless PII logging is on.
    private static string Describe(Exception? ex) => ex switch
    {
        SecurityTokenExpiredException => "token expired",
        SecurityTokenNotYetValidException => "token not yet valid (nbf)",
        SecurityTokenNoExpirationException => "token has no exp",
        SecurityTokenInvalidAudienceException => "wrong audience",
        SecurityTokenInvalidIssuerException => "wrong issuer",
        SecurityTokenInvalidAlgorithmException => "signature algorithm not allowed",
        SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException => "signature does not verify with any configured key",
        SecurityTokenMalformedException => "malformed token",
        null => "invalid token",
        _ => "invalid token (" + ex.GetType().Name + ")",
    };
}
