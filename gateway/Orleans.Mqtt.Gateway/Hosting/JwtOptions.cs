namespace Orleans.Mqtt.Gateway;

/// <summary>
/// JSON Web Tokens carried in the CONNECT password (configuration section <c>Mqtt:Jwt</c>). Keys come from a shared secret
/// (HS256/384/512), a PEM public key (RS*, PS*, ES*), a JWKS file or a JWKS URL; any combination of them may be set.
/// </summary>
public sealed class JwtOptions
{
    /// <summary>Whether a password that is a JWT is checked as one (<c>Mqtt:Jwt:Enabled</c>).</summary>
    public bool Enabled { get; set; }

    /// <summary>Shared secret for HMAC-signed tokens, as text (<c>Mqtt:Jwt:Secret</c>); at least 32 bytes. Never logged.</summary>
    public string? Secret { get; set; }

    /// <summary>File holding the shared secret (<c>Mqtt:Jwt:SecretFile</c>; surrounding white space is ignored).</summary>
    public string? SecretFile { get; set; }

    /// <summary>PEM file with one or more RSA or EC public keys or certificates (<c>Mqtt:Jwt:PublicKeyFile</c>).</summary>
    public string? PublicKeyFile { get; set; }

    /// <summary>JSON Web Key Set file (<c>Mqtt:Jwt:JwksFile</c>); re-read when it changes.</summary>
    public string? JwksFile { get; set; }

    /// <summary>JSON Web Key Set URL (<c>Mqtt:Jwt:JwksUrl</c>); fetched at start, every <see cref="JwksRefreshInterval"/> and on an unknown key id.</summary>
    public string? JwksUrl { get; set; }

    /// <summary>How often the JWKS URL is fetched again (<c>Mqtt:Jwt:JwksRefreshInterval</c>).</summary>
    public TimeSpan JwksRefreshInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Least time between two fetches of the JWKS URL caused by tokens with an unknown key id (<c>Mqtt:Jwt:JwksMinRefreshInterval</c>),
    /// so a client sending made-up key ids cannot make the gateway hammer the key server.
    /// </summary>
    public TimeSpan JwksMinRefreshInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The <c>iss</c> a token must carry (<c>Mqtt:Jwt:Issuer</c>); not checked when empty.</summary>
    public string? Issuer { get; set; }

    /// <summary>The <c>aud</c> a token must carry (<c>Mqtt:Jwt:Audience</c>); not checked when empty.</summary>
    public string? Audience { get; set; }

    /// <summary>Clock difference allowed when checking <c>exp</c> and <c>nbf</c> (<c>Mqtt:Jwt:ClockSkew</c>); a connection ends at <c>exp</c> plus this.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Claim whose value becomes the connection's user name (<c>Mqtt:Jwt:UserNameClaim</c>).</summary>
    public string UserNameClaim { get; set; } = "sub";

    /// <summary>Claim that must equal the CONNECT's client id when set (<c>Mqtt:Jwt:ClientIdClaim</c>); empty: tokens are not bound to a client id.</summary>
    public string? ClientIdClaim { get; set; }

    /// <summary>
    /// Claim holding the connection's own access rules (<c>Mqtt:Jwt:AclClaim</c>): an object with <c>pub</c>, <c>sub</c> and
    /// <c>all</c> lists of topic filters (write, read, read and write), which may hold <c>%c</c> and <c>%u</c>.
    /// </summary>
    public string AclClaim { get; set; } = "acl";

    /// <summary>Whether any key source is configured.</summary>
    public bool HasKeySource =>
        !string.IsNullOrEmpty(Secret) || !string.IsNullOrEmpty(SecretFile) || !string.IsNullOrEmpty(PublicKeyFile)
        || !string.IsNullOrEmpty(JwksFile) || !string.IsNullOrEmpty(JwksUrl);

    /// <summary>The settings, with the secret left out.</summary>
    public override string ToString() =>
        $"Enabled={Enabled}, Secret={(string.IsNullOrEmpty(Secret) ? "none" : "(redacted)")}, SecretFile={SecretFile}, PublicKeyFile={PublicKeyFile}, "
        + $"JwksFile={JwksFile}, JwksUrl={JwksUrl}, Issuer={Issuer}, Audience={Audience}, UserNameClaim={UserNameClaim}, ClientIdClaim={ClientIdClaim}, AclClaim={AclClaim}";
}
