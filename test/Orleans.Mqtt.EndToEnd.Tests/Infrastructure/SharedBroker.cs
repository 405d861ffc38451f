using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>
/// One standalone broker shared by a test collection, with its TLS listener on (a self-signed certificate) and
/// tracing on with <c>Tracing:Propagation</c> PassThrough.
/// </summary>
public sealed class SharedBroker : IAsyncLifetime
{
    private string? _certificateDirectory;

    public BrokerProcess Broker { get; private set; } = null!;

    /// <summary>The JSON-lines file the broker writes its spans to (<c>Tracing:FilePath</c>).</summary>
    public string SpansFile => Path.Combine(_certificateDirectory!, ClusterFixture.SpansFileName);

    public async Task InitializeAsync()
    {
        _certificateDirectory = BrokerProcess.TempDirectory();
        var (cert, key) = WriteSelfSignedCertificate(_certificateDirectory);
        Broker = await BrokerProcess.StartAsync(new Dictionary<string, string>
        {
            ["Mqtt__Tls__CertificateFile"] = cert,
            ["Mqtt__Tls__KeyFile"] = key,

            // Short intervals so expiry and $SYS tests see the effect within a second or two.
            ["Mqtt__SessionSweepInterval"] = "00:00:00.200",
            ["Mqtt__SysInterval"] = "00:00:01",

            // Tracing on with the publisher's traceparent passed through unchanged (the cluster replaces it); only
            // sampled incoming contexts and the traced topics are recorded.
            ["Tracing__Enabled"] = "true",
            ["Tracing__SamplingRatio"] = "0",
            ["Tracing__AlwaysSampleTopicFilters__0"] = ClusterFixture.TracedTopicFilter,
            ["Tracing__Propagation"] = "PassThrough",
            ["Tracing__FilePath"] = SpansFile,
        });
    }

    public async Task DisposeAsync()
    {
        await Broker.DisposeAsync();
        if (_certificateDirectory is not null)
        {
            Directory.Delete(_certificateDirectory, recursive: true);
        }
    }

    public static (string CertificateFile, string KeyFile) WriteSelfSignedCertificate(string directory)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        var certFile = Path.Combine(directory, "server.crt");
        var keyFile = Path.Combine(directory, "server.key");
        File.WriteAllText(certFile, certificate.ExportCertificatePem());
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        return (certFile, keyFile);
    }
}

[CollectionDefinition(Name)]
public sealed class SharedBrokerCollection : ICollectionFixture<SharedBroker>
{
    public const string Name = "shared broker";
}
