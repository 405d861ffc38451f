using System.Text;
using Microsoft.Extensions.Options;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Fails at startup, naming the setting, on device identity settings that cannot work: client certificates
/// (<c>Mqtt:Tls:ClientCertificateMode</c>, <c>ClientCaFile</c>, <c>CrlFile</c>, <c>ClientIdentity</c>), tokens
/// (<c>Mqtt:Jwt:*</c>) and <c>Mqtt:AuthenticationOrder</c>.
/// </summary>
public sealed class DeviceIdentityOptionsValidator : IValidateOptions<MqttGatewayOptions>
{
    /// <summary>Shortest shared secret: HS256 needs a key of at least 256 bits.</summary>
    public const int MinSecretBytes = 32;

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, MqttGatewayOptions o)
    {
        var errors = new List<string>();
        CheckClientCertificates(errors, o.Tls);
        CheckJwt(errors, o.Jwt);
        if (!ConnectAuthenticator.TryParseOrder(o.AuthenticationOrder, out var order, out var orderError))
        {
            errors.Add(orderError!);
        }
        else
        {
            CheckListed(errors, order, IdentitySource.Certificate, o.Tls.ClientCertificateMode != TlsClientCertificateMode.None, "Mqtt:Tls:ClientCertificateMode is set");
            CheckListed(errors, order, IdentitySource.Jwt, o.Jwt.Enabled, "Mqtt:Jwt:Enabled is true");
            CheckListed(errors, order, IdentitySource.Users, !string.IsNullOrEmpty(o.UsersFile), "Mqtt:UsersFile is set");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void CheckClientCertificates(List<string> errors, TlsListenerOptions tls)
    {
        if (!ClientCertificateNames.Kinds.Contains(tls.ClientIdentity))
        {
            errors.Add($"Mqtt:Tls:ClientIdentity must be one of {string.Join(", ", ClientCertificateNames.Kinds)} (was '{tls.ClientIdentity}').");
        }

        if (tls.ClientCertificateMode == TlsClientCertificateMode.None)
        {
            return;
        }

        if (!tls.Enabled)
        {
            errors.Add($"Mqtt:Tls:ClientCertificateMode is {tls.ClientCertificateMode} but the TLS listener is off (it needs Mqtt:Tls:CertificateFile and Mqtt:Tls:Port).");
        }

        if (string.IsNullOrEmpty(tls.ClientCaFile) || !File.Exists(tls.ClientCaFile))
        {
            errors.Add($"Mqtt:Tls:ClientCaFile '{tls.ClientCaFile}' does not exist (a PEM file of the CAs client certificates chain to is required with Mqtt:Tls:ClientCertificateMode {tls.ClientCertificateMode}).");
        }

        if (!string.IsNullOrEmpty(tls.CrlFile) && !File.Exists(tls.CrlFile))
        {
            errors.Add($"Mqtt:Tls:CrlFile '{tls.CrlFile}' does not exist.");
        }
    }

    private static void CheckJwt(List<string> errors, JwtOptions jwt)
    {
        if (!jwt.Enabled)
        {
            return;
        }

        if (!jwt.HasKeySource)
        {
            errors.Add("Mqtt:Jwt:Enabled is true but no key is configured: set Mqtt:Jwt:Secret, SecretFile, PublicKeyFile, JwksFile or JwksUrl.");
        }

        if (!string.IsNullOrEmpty(jwt.Secret) && !string.IsNullOrEmpty(jwt.SecretFile))
        {
            errors.Add("Mqtt:Jwt:Secret and Mqtt:Jwt:SecretFile are both set; set one.");
        }

        if (!string.IsNullOrEmpty(jwt.Secret) && Encoding.UTF8.GetByteCount(jwt.Secret) < MinSecretBytes)
        {
            // The secret itself is never written out.
            errors.Add($"Mqtt:Jwt:Secret must be at least {MinSecretBytes} bytes (HS256 needs a 256-bit key).");
        }

        CheckFile(errors, "Mqtt:Jwt:SecretFile", jwt.SecretFile);
        CheckFile(errors, "Mqtt:Jwt:PublicKeyFile", jwt.PublicKeyFile);
        CheckFile(errors, "Mqtt:Jwt:JwksFile", jwt.JwksFile);
        if (!string.IsNullOrEmpty(jwt.JwksUrl)
            && !(Uri.TryCreate(jwt.JwksUrl, UriKind.Absolute, out var url) && (url.Scheme == Uri.UriSchemeHttps || url.Scheme == Uri.UriSchemeHttp)))
        {
            errors.Add($"Mqtt:Jwt:JwksUrl must be an absolute http or https URL (was '{jwt.JwksUrl}').");
        }

        if (jwt.JwksRefreshInterval <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:Jwt:JwksRefreshInterval must be positive (was {jwt.JwksRefreshInterval}).");
        }

        if (jwt.JwksMinRefreshInterval < TimeSpan.Zero)
        {
            errors.Add($"Mqtt:Jwt:JwksMinRefreshInterval must not be negative (was {jwt.JwksMinRefreshInterval}).");
        }

        if (jwt.ClockSkew < TimeSpan.Zero)
        {
            errors.Add($"Mqtt:Jwt:ClockSkew must not be negative (was {jwt.ClockSkew}).");
        }

        if (string.IsNullOrEmpty(jwt.UserNameClaim))
        {
            errors.Add("Mqtt:Jwt:UserNameClaim must not be empty.");
        }

        if (string.IsNullOrEmpty(jwt.AclClaim))
        {
            errors.Add("Mqtt:Jwt:AclClaim must not be empty.");
        }
    }

    private static void CheckFile(List<string> errors, string setting, string? file)
    {
        if (!string.IsNullOrEmpty(file) && !File.Exists(file))
        {
            errors.Add($"{setting} '{file}' does not exist.");
        }
    }

    private static void CheckListed(List<string> errors, IdentitySource[] order, IdentitySource source, bool configured, string why)
    {
        if (configured && !order.Contains(source))
        {
            errors.Add($"{why} but Mqtt:AuthenticationOrder does not list '{source.ToString().ToLowerInvariant()}', so it would never be used.");
        }
    }
}
