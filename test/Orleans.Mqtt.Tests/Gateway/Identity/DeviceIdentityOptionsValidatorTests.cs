using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway.Identity;

public sealed class DeviceIdentityOptionsValidatorTests
{
    [Fact]
    public void Defaults_are_valid()
    {
        Assert.True(new DeviceIdentityOptionsValidator().Validate(null, new MqttGatewayOptions()).Succeeded);
    }

    [Fact]
    public void Bad_settings_fail_naming_the_key_and_never_showing_the_secret()
    {
        var options = new MqttGatewayOptions
        {
            AuthenticationOrder = "jwt,users",
            Tls = new TlsListenerOptions { Port = 0, ClientCertificateMode = TlsClientCertificateMode.Required, ClientIdentity = "serial", CrlFile = "/nonexistent/crl.pem" },
            Jwt = new JwtOptions
            {
                Enabled = true,
                Secret = "too-short-secret",
                JwksUrl = "ftp://keys.example/jwks",
                JwksRefreshInterval = TimeSpan.Zero,
                UserNameClaim = "",
            },
        };

        var result = new DeviceIdentityOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        var message = result.FailureMessage;
        foreach (var key in new[]
        {
            "Mqtt:Tls:ClientIdentity", "Mqtt:Tls:ClientCertificateMode", "Mqtt:Tls:ClientCaFile", "Mqtt:Tls:CrlFile",
            "Mqtt:Jwt:Secret", "Mqtt:Jwt:JwksUrl", "Mqtt:Jwt:JwksRefreshInterval", "Mqtt:Jwt:UserNameClaim",
            "'certificate'",
        })
        {
            Assert.Contains(key, message, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("too-short-secret", message, StringComparison.Ordinal);
        Assert.DoesNotContain("too-short-secret", options.Jwt.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Tokens_without_a_key_and_an_unknown_order_are_refused()
    {
        var options = new MqttGatewayOptions { AuthenticationOrder = "jwt,ldap", Jwt = new JwtOptions { Enabled = true } };

        var message = new DeviceIdentityOptionsValidator().Validate(null, options).FailureMessage;

        Assert.Contains("no key is configured", message, StringComparison.Ordinal);
        Assert.Contains("Mqtt:AuthenticationOrder has 'ldap'", message, StringComparison.Ordinal);
    }
}
