using System.Security.Cryptography.X509Certificates;
using MQTTnet;
using MQTTnet.Formatter;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// Mutual TLS against the real broker: client certificates made here by a test CA, checked at the handshake against
/// <c>Mqtt:Tls:ClientCaFile</c> and <c>Mqtt:Tls:CrlFile</c>; the certificate's CN becomes the user name.
/// </summary>
public sealed class ClientCertificateTests(ClientCertificateTests.Fixture fixture) : IClassFixture<ClientCertificateTests.Fixture>
{
    private const string RefusedCounter = "mqtt_tls_handshakes_refused_total";

    private BrokerProcess Broker => fixture.Broker;

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task A_certificate_signed_by_the_configured_ca_connects_as_its_common_name(MqttProtocolVersion version)
    {
        using var certificate = fixture.Ca.Issue("device-" + (int)version);
        var clientId = "mtls-" + Guid.NewGuid().ToString("N");

        // The user name the CONNECT claims does not count: the certificate names the client.
        using var client = new MqttClientFactory().CreateMqttClient();
        var result = await client.ConnectAsync(Options(certificate, clientId, version, userName: "someone-else"));
        Assert.Equal(MqttClientConnectResultCode.Success, result.ResultCode);

        var line = await Broker.WaitForOutputAsync(l => l.Contains(clientId, StringComparison.Ordinal) && l.Contains(" is user ", StringComparison.Ordinal));
        Assert.Contains($"is user 'device-{(int)version}' (Certificate", line, StringComparison.Ordinal);
        await client.DisconnectAsync();
    }

    [Fact]
    public async Task Untrusted_expired_revoked_and_missing_certificates_are_refused_at_the_handshake_and_counted()
    {
        using var untrusted = fixture.Stranger.Issue("device-untrusted");
        using var expired = fixture.Ca.Issue("device-expired", DateTimeOffset.UtcNow.AddDays(-10), DateTimeOffset.UtcNow.AddDays(-1));
        (X509Certificate2? Certificate, string Reason)[] cases =
        [
            (untrusted, "untrusted"),
            (expired, "expired"),
            (fixture.Revoked, "revoked"),
            (null, "no_certificate"),
        ];

        foreach (var (certificate, reason) in cases)
        {
            var label = $"reason=\"{reason}\"";
            var before = await Broker.GetCounterAsync(RefusedCounter, label);
            using var client = new MqttClientFactory().CreateMqttClient();

            // Counted by the server before it ends the handshake, so the count is there once the client has failed.
            await Assert.ThrowsAnyAsync<Exception>(() => client.ConnectAsync(Options(certificate, "refused-" + reason, MqttProtocolVersion.V500)));
            Assert.False(client.IsConnected, reason);
            Assert.Equal(before + 1, await Broker.GetCounterAsync(RefusedCounter, label));
        }

        // Logged with the remote address, one line per interval (another test's refusal may hold this interval's line).
        await Broker.WaitForOutputAsync(l => l.Contains("TLS handshake from 127.0.0.1:", StringComparison.Ordinal) && l.Contains(" refused (", StringComparison.Ordinal));

        // Good certificates still get in.
        using var good = fixture.Ca.Issue("device-after");
        using var after = new MqttClientFactory().CreateMqttClient();
        Assert.Equal(MqttClientConnectResultCode.Success, (await after.ConnectAsync(Options(good, "after-" + Guid.NewGuid().ToString("N"), MqttProtocolVersion.V500))).ResultCode);
        await after.DisconnectAsync();
    }

    [Fact]
    public async Task A_certificate_revoked_while_the_broker_runs_is_refused_once_the_crl_file_is_replaced()
    {
        using var certificate = fixture.Ca.Issue("device-revoked-later");
        using (var first = new MqttClientFactory().CreateMqttClient())
        {
            Assert.Equal(MqttClientConnectResultCode.Success, (await first.ConnectAsync(Options(certificate, "crl-before-" + Guid.NewGuid().ToString("N"), MqttProtocolVersion.V500))).ResultCode);
            await first.DisconnectAsync();
        }

        await fixture.RevokeAsync(certificate);

        var label = "reason=\"revoked\"";
        var before = await Broker.GetCounterAsync(RefusedCounter, label);
        using var second = new MqttClientFactory().CreateMqttClient();
        await Assert.ThrowsAnyAsync<Exception>(() => second.ConnectAsync(Options(certificate, "crl-after-" + Guid.NewGuid().ToString("N"), MqttProtocolVersion.V500)));
        Assert.Equal(before + 1, await Broker.GetCounterAsync(RefusedCounter, label));
    }

    private MqttClientOptions Options(X509Certificate2? certificate, string clientId, MqttProtocolVersion version, string? userName = null)
    {
        var builder = new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", Broker.TlsPort)
            .WithProtocolVersion(version)
            .WithClientId(clientId)
            .WithTimeout(TimeSpan.FromSeconds(10))
            .WithTlsOptions(o =>
            {
                o.UseTls().WithCertificateValidationHandler(_ => true);
                if (certificate is not null)
                {
                    o.WithClientCertificates(new X509Certificate2Collection(certificate));
                }
            });
        if (userName is not null)
        {
            builder.WithCredentials(userName, "ignored");
        }

        return builder.Build();
    }

    /// <summary>One broker for the class: TLS with client certificates required, a test CA and its CRL.</summary>
    public sealed class Fixture : IAsyncLifetime
    {
        private string _directory = null!;

        public BrokerProcess Broker { get; private set; } = null!;

        public TestPki Ca { get; } = TestPki.Create("CN=Fleet Device CA, O=Test");

        /// <summary>A CA with the same name that the broker does not trust.</summary>
        public TestPki Stranger { get; } = TestPki.Create("CN=Fleet Device CA, O=Impostor");

        public X509Certificate2 Revoked { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            _directory = BrokerProcess.TempDirectory();
            var (serverCertificate, serverKey) = SharedBroker.WriteSelfSignedCertificate(_directory);
            Revoked = Ca.Issue("device-revoked");
            Ca.Revoke(Revoked);
            var caFile = Path.Combine(_directory, "clients-ca.pem");
            var crlFile = Path.Combine(_directory, "clients.crl");
            await File.WriteAllTextAsync(caFile, Ca.CertificatePem());
            await File.WriteAllTextAsync(crlFile, Ca.CrlPem());
            Broker = await BrokerProcess.StartAsync(new Dictionary<string, string>
            {
                ["Mqtt__Tls__CertificateFile"] = serverCertificate,
                ["Mqtt__Tls__KeyFile"] = serverKey,
                ["Mqtt__Tls__ClientCertificateMode"] = "required",
                ["Mqtt__Tls__ClientCaFile"] = caFile,
                ["Mqtt__Tls__CrlFile"] = crlFile,
            });
        }

        /// <summary>Revokes <paramref name="certificate"/> and replaces the CRL file (a new file renamed over it).</summary>
        public async Task RevokeAsync(X509Certificate2 certificate)
        {
            Ca.Revoke(certificate);
            var crlFile = Path.Combine(_directory, "clients.crl");
            await File.WriteAllTextAsync(crlFile + ".new", Ca.CrlPem());
            File.Move(crlFile + ".new", crlFile, overwrite: true);
        }

        public async Task DisposeAsync()
        {
            await Broker.DisposeAsync();
            Revoked.Dispose();
            Ca.Dispose();
            Stranger.Dispose();
            Directory.Delete(_directory, recursive: true);
        }
    }
}
