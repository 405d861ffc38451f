using System.Security.Cryptography.X509Certificates;
using System.Text;
using Orleans.Mqtt.Security;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Establishes who a CONNECT is, from the sources <c>Mqtt:AuthenticationOrder</c> lists, in that order (default
/// <c>certificate,jwt,users</c>; a source that is not configured is skipped):
/// <list type="bullet">
/// <item><c>certificate</c> decides when the TLS handshake carried a client certificate (it was checked there): the
/// connection's user name is the certificate's name (<c>Mqtt:Tls:ClientIdentity</c>); the CONNECT's user name and password
/// are not looked at.</item>
/// <item><c>jwt</c> decides when the password has the form of a JWT: the token is checked and names the user.</item>
/// <item><c>users</c> decides when the user name is in the users file: the password must match.</item>
/// </list>
/// When no source decides, a CONNECT with credentials gets "bad user name or password" (unless no source checks credentials
/// at all, when they count for nothing), and one without is anonymous where <c>Mqtt:AllowAnonymous</c> allows it. A user
/// name no source verified is never the connection's user name.
/// </summary>
internal sealed class ConnectAuthenticator : IDisposable
{
    private readonly IdentitySource[] _order;
    private readonly UsersFile? _users;
    private readonly JwtAuthenticator? _jwt;
    private readonly string? _certificateName;
    private readonly bool _anonymousAllowed;

    public ConnectAuthenticator(MqttGatewayOptions options, TimeProvider timeProvider, ILoggerFactory loggerFactory)
    {
        _anonymousAllowed = options.AnonymousAllowed;
        if (!TryParseOrder(options.AuthenticationOrder, out var order, out var error))
        {
            throw new InvalidOperationException(error);
        }

        if (!string.IsNullOrEmpty(options.UsersFile) && order.Contains(IdentitySource.Users))
        {
            _users = UsersFile.Load(options.UsersFile);
        }

        if (options.Jwt.Enabled && order.Contains(IdentitySource.Jwt))
        {
            _jwt = new JwtAuthenticator(options.Jwt, timeProvider, loggerFactory.CreateLogger<JwtAuthenticator>());
        }

        if (options.Tls.ClientCertificatesEnabled && order.Contains(IdentitySource.Certificate))
        {
            _certificateName = options.Tls.ClientIdentity;
        }

        _order = order;
    }

    /// <summary>The users the users file holds (0 without one).</summary>
    public int UserCount => _users?.Count ?? 0;

    /// <summary>
    /// Who the CONNECT of <paramref name="clientId"/> with <paramref name="username"/> and <paramref name="password"/> is, on a
    /// connection whose TLS handshake carried <paramref name="clientCertificate"/> (null on other connections).
    /// </summary>
    public async ValueTask<ConnectIdentity> AuthenticateAsync(string clientId, string? username, byte[]? password, X509Certificate2? clientCertificate)
    {
        string? passwordText = null;
        foreach (var source in _order)
        {
            switch (source)
            {
                case IdentitySource.Certificate when _certificateName is not null && clientCertificate is not null:
                    return ClientCertificateNames.Get(clientCertificate, _certificateName) is { } name
                        ? new ConnectIdentity(AuthResult.Ok, name, IdentitySource.Certificate)
                        : ConnectIdentity.BadCredentials(IdentitySource.Certificate, $"client certificate '{clientCertificate.Subject}' has no {_certificateName} (Mqtt:Tls:ClientIdentity)");
                case IdentitySource.Jwt when _jwt is not null && password is { Length: > 0 }:
                    passwordText ??= Utf8OrNull(password);
                    if (passwordText is not null && _jwt.IsToken(passwordText))
                    {
                        return await _jwt.AuthenticateAsync(clientId, username, passwordText).ConfigureAwait(false);
                    }

                    break;
                case IdentitySource.Users when _users is not null && !string.IsNullOrEmpty(username):
                    // Verify first: an unknown user costs the same time as a known one with a wrong password.
                    if (_users.Verify(username, password ?? []))
                    {
                        return new ConnectIdentity(AuthResult.Ok, username, IdentitySource.Users);
                    }

                    if (_users.Contains(username))
                    {
                        return ConnectIdentity.BadCredentials(IdentitySource.Users, $"bad password for '{username}'");
                    }

                    break;
            }
        }

        var hasCredentials = !string.IsNullOrEmpty(username) || password is { Length: > 0 };
        if (hasCredentials && (_users is not null || _jwt is not null || string.IsNullOrEmpty(username)))
        {
            return ConnectIdentity.BadCredentials(IdentitySource.Anonymous, $"bad user name or password for '{username}'");
        }

        // No credentials, or no source that checks them: they count for nothing.
        return _anonymousAllowed ? ConnectIdentity.Anonymous : ConnectIdentity.NotAuthorized("anonymous clients are not allowed");
    }

    public void Dispose() => _jwt?.Dispose();

    /// <summary>Reads <c>Mqtt:AuthenticationOrder</c>: names from <c>certificate</c>, <c>jwt</c> and <c>users</c>, comma-separated, each at most once.</summary>
    public static bool TryParseOrder(string? text, out IdentitySource[] order, out string? error)
    {
        var sources = new List<IdentitySource>();
        error = null;
        foreach (var part in (text ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            IdentitySource? source = part.ToLowerInvariant() switch
            {
                "certificate" => IdentitySource.Certificate,
                "jwt" => IdentitySource.Jwt,
                "users" => IdentitySource.Users,
                _ => null,
            };
            if (source is null)
            {
                error = $"Mqtt:AuthenticationOrder has '{part}'; the sources are certificate, jwt and users.";
            }
            else if (sources.Contains(source.Value))
            {
                error = $"Mqtt:AuthenticationOrder names '{part}' twice.";
            }
            else
            {
                sources.Add(source.Value);
            }
        }

        order = [.. sources];
        return error is null;
    }

    private static string? Utf8OrNull(byte[] bytes)
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }
}
