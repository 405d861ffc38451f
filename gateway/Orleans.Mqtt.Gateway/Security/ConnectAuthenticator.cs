using Orleans.Mqtt.Security;

namespace Orleans.Mqtt.Gateway;

/// <summary>Checks a CONNECT's credentials against the users file (<c>Mqtt:UsersFile</c>) and <c>Mqtt:AllowAnonymous</c>.</summary>
internal sealed class ConnectAuthenticator
{
    private readonly UsersFile? _users;
    private readonly bool _anonymousAllowed;

    public ConnectAuthenticator(MqttGatewayOptions options)
    {
        _anonymousAllowed = options.AnonymousAllowed;
        if (!string.IsNullOrEmpty(options.UsersFile))
        {
            _users = UsersFile.Load(options.UsersFile);
        }
    }

    /// <summary>The users the users file holds (0 without one).</summary>
    public int UserCount => _users?.Count ?? 0;

    /// <summary>Whether a CONNECT with <paramref name="username"/> and <paramref name="password"/> may connect.</summary>
    public AuthResult Authenticate(string? username, byte[]? password)
    {
        if (string.IsNullOrEmpty(username))
        {
            if (password is { Length: > 0 })
            {
                return AuthResult.BadCredentials;
            }

            return _anonymousAllowed ? AuthResult.Ok : AuthResult.NotAuthorized;
        }

        if (_users is null)
        {
            // No users file: credentials cannot be checked, so they count for nothing.
            return _anonymousAllowed ? AuthResult.Ok : AuthResult.NotAuthorized;
        }

        return _users.Verify(username, password ?? []) ? AuthResult.Ok : AuthResult.BadCredentials;
    }
}
