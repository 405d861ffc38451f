using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Http.Features;
using Orleans.Mqtt.Protocol;

namespace Orleans.Mqtt.Gateway;

// Who the client is: the identity its CONNECT established (see ConnectAuthenticator), and the end of the connection
// when its credentials run out.
internal sealed partial class MqttConnection
{
    private ConnectIdentity _identity = ConnectIdentity.Anonymous;
    private ITimer? _identityExpiry;

    /// <summary>The verified user name (certificate name, token claim or users-file user); null for an anonymous client.</summary>
    public string? UserName => _identity.UserName;

    /// <summary>The access rules the client's credentials carry (a token's ACL claim), for the ACL engine; null when none.</summary>
    public IReadOnlyList<AccessRule>? CredentialRules => _identity.Rules;

    /// <summary>When the client's credentials run out and the connection is closed; null when they do not.</summary>
    public DateTimeOffset? CredentialsExpireAt => _identity.ExpiresAt;

    /// <summary>The certificate the client presented in the TLS handshake (checked there), on the TLS listener.</summary>
    private X509Certificate2? ClientCertificate => _transport.Features.Get<ITlsConnectionFeature>()?.ClientCertificate;

    /// <summary>Takes the accepted identity and, for credentials that expire, sets the time the connection ends.</summary>
    private void AdoptIdentity(string clientId, ConnectIdentity identity)
    {
        _identity = identity;
        LogIdentity(_logger, clientId, _transport.RemoteEndPoint, identity.UserName ?? "(anonymous)", identity.Source, identity.Rules?.Count ?? 0, identity.ExpiresAt);
        if (identity.ExpiresAt is { } expiresAt)
        {
            var timeProvider = _gateway.TimeProvider;
            var due = expiresAt - timeProvider.GetUtcNow();

            // MQTT 5 clients get DISCONNECT 0xA0 (Maximum connect time): the time the token allowed is over; a fresh
            // token lets them back in. 0x87 (Not authorized) would read as credentials that are wrong.
            _identityExpiry = timeProvider.CreateTimer(
                static state => ((MqttConnection)state!).CloseByServer(CloseReason.CredentialsExpired),
                this,
                due > TimeSpan.Zero ? due : TimeSpan.Zero,
                Timeout.InfiniteTimeSpan);
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Client {ClientId} from {Remote} is user '{UserName}' ({Source}; {RuleCount} access rules from its credentials; valid until {ExpiresAt})")]
    private static partial void LogIdentity(ILogger logger, string clientId, System.Net.EndPoint? remote, string userName, IdentitySource source, int ruleCount, DateTimeOffset? expiresAt);
}
