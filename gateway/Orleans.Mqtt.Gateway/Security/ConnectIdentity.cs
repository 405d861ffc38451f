namespace Orleans.Mqtt.Gateway;

/// <summary>Which source established a connection's identity (the names <c>Mqtt:AuthenticationOrder</c> lists).</summary>
internal enum IdentitySource
{
    /// <summary>No credentials were checked: an anonymous connection.</summary>
    Anonymous,

    /// <summary>The client certificate of the TLS handshake.</summary>
    Certificate,

    /// <summary>A JSON Web Token in the CONNECT password.</summary>
    Jwt,

    /// <summary>The user name and password, checked against the users file.</summary>
    Users,
}

/// <summary>
/// Who a connection is, as the CONNECT's credentials established it: the outcome, the user name the rest of the connection
/// uses (null for an anonymous connection), when the credentials stop being valid, and the access rules they carry.
/// </summary>
/// <param name="Result">Whether the connection may go on.</param>
/// <param name="UserName">The verified user name; null when anonymous or refused.</param>
/// <param name="Source">Where the identity came from.</param>
/// <param name="ExpiresAt">When the credentials run out (a token's <c>exp</c> plus <c>Mqtt:Jwt:ClockSkew</c>); the connection is closed then.</param>
/// <param name="Rules">Access rules carried by the credentials (a token's ACL claim), added to the ACL file's for this connection; null when none.</param>
/// <param name="Detail">Why the credentials were refused, for the log (never the secret).</param>
internal sealed record ConnectIdentity(
    AuthResult Result,
    string? UserName,
    IdentitySource Source,
    DateTimeOffset? ExpiresAt = null,
    IReadOnlyList<AccessRule>? Rules = null,
    string? Detail = null)
{
    /// <summary>An anonymous connection.</summary>
    public static readonly ConnectIdentity Anonymous = new(AuthResult.Ok, null, IdentitySource.Anonymous);

    /// <summary>Credentials that were checked and failed.</summary>
    public static ConnectIdentity BadCredentials(IdentitySource source, string detail) => new(AuthResult.BadCredentials, null, source, Detail: detail);

    /// <summary>A connection without the credentials it needs.</summary>
    public static ConnectIdentity NotAuthorized(string detail) => new(AuthResult.NotAuthorized, null, IdentitySource.Anonymous, Detail: detail);
}
