using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>A certificate authority made by a test with .NET's certificate APIs: it issues client certificates and CRLs.</summary>
public sealed class TestPki : IDisposable
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");
    private readonly List<X509Certificate2> _revoked = [];
    private long _nextSerial = 1000;

    private TestPki(X509Certificate2 authority) => Authority = authority;

    /// <summary>The CA's certificate, with its private key.</summary>
    public X509Certificate2 Authority { get; }

    /// <summary>A self-signed CA named <paramref name="subject"/>, valid from 30 days ago for a year.</summary>
    public static TestPki Create(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        return new TestPki(request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddYears(1)));
    }

    /// <summary>A client certificate for <paramref name="commonName"/> signed by this CA, valid from <paramref name="notBefore"/> to <paramref name="notAfter"/>.</summary>
    public X509Certificate2 Issue(string commonName, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null, string? email = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}, O=Devices", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ClientAuthentication], critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Authority, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        if (email is not null)
        {
            var san = new SubjectAlternativeNameBuilder();
            san.AddEmailAddress(email);
            request.CertificateExtensions.Add(san.Build());
        }

        var serial = BitConverter.GetBytes(Interlocked.Increment(ref _nextSerial));
        Array.Reverse(serial);
        using var issued = request.Create(
            Authority,
            notBefore ?? DateTimeOffset.UtcNow.AddHours(-1),
            notAfter ?? DateTimeOffset.UtcNow.AddDays(30),
            serial);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>Adds <paramref name="certificate"/> to the CRL <see cref="CrlPem"/> makes.</summary>
    public void Revoke(X509Certificate2 certificate) => _revoked.Add(certificate);

    /// <summary>A CRL of this CA listing the revoked certificates, in PEM.</summary>
    public string CrlPem()
    {
        var builder = new CertificateRevocationListBuilder();
        foreach (var certificate in _revoked)
        {
            builder.AddEntry(certificate, DateTimeOffset.UtcNow.AddMinutes(-5), X509RevocationReason.KeyCompromise);
        }

        var der = builder.Build(Authority, BigInteger.One, DateTimeOffset.UtcNow.AddDays(7), HashAlgorithmName.SHA256);
        return PemEncoding.WriteString("X509 CRL", der);
    }

    /// <summary>The CA's certificate in PEM (what <c>Mqtt:Tls:ClientCaFile</c> holds).</summary>
    public string CertificatePem() => Authority.ExportCertificatePem();

    public void Dispose()
    {
        Authority.Dispose();
    }
}
