using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway.Identity;

public sealed class RevocationListsTests : IDisposable
{
    private readonly X509Certificate2 _ecCa = Authority("CN=EC CA", ecdsa: true);
    private readonly X509Certificate2 _rsaCa = Authority("CN=RSA CA", ecdsa: false);

    public void Dispose()
    {
        _ecCa.Dispose();
        _rsaCa.Dispose();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_listed_serial_is_revoked_and_others_of_the_same_issuer_are_good(bool ecdsa)
    {
        var ca = ecdsa ? _ecCa : _rsaCa;
        using var revoked = Issue(ca, "device-1", 0x00, 0x81);
        using var good = Issue(ca, "device-2", 0x01, 0x02);
        var crl = Crl(ca, revoked);

        var lists = RevocationLists.Parse(Encoding.ASCII.GetBytes(PemEncoding.WriteString("X509 CRL", crl)), [_ecCa, _rsaCa]);

        Assert.Equal(RevocationStatus.Revoked, lists.Check(revoked));
        Assert.Equal(RevocationStatus.Good, lists.Check(good));
    }

    [Fact]
    public void A_certificate_of_an_issuer_without_a_list_is_unknown_and_der_lists_are_read_too()
    {
        using var device = Issue(_rsaCa, "device-3", 0x05);
        var lists = RevocationLists.Parse(Crl(_ecCa), [_ecCa, _rsaCa]);

        Assert.Equal(1, lists.Count);
        Assert.Equal(RevocationStatus.Unknown, lists.Check(device));
    }

    [Fact]
    public void A_list_not_signed_by_a_configured_ca_is_refused()
    {
        using var impostor = Authority("CN=EC CA", ecdsa: true);
        var forged = Crl(impostor);

        var error = Assert.Throws<FormatException>(() => RevocationLists.Parse(forged, [_ecCa]));
        Assert.Contains("not signed by a certificate of Mqtt:Tls:ClientCaFile", error.Message, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => RevocationLists.Parse("not a CRL"u8.ToArray(), [_ecCa]));
    }

    private static byte[] Crl(X509Certificate2 ca, params X509Certificate2[] revoked)
    {
        var builder = new CertificateRevocationListBuilder();
        foreach (var certificate in revoked)
        {
            builder.AddEntry(certificate);
        }

        return builder.Build(ca, BigInteger.One, DateTimeOffset.UtcNow.AddDays(1), HashAlgorithmName.SHA256, ca.GetRSAPublicKey() is null ? null : RSASignaturePadding.Pkcs1);
    }

    private static X509Certificate2 Authority(string subject, bool ecdsa)
    {
        var request = ecdsa
            ? new CertificateRequest(subject, ECDsa.Create(ECCurve.NamedCurves.nistP256), HashAlgorithmName.SHA256)
            : new CertificateRequest(subject, RSA.Create(2048), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    private static X509Certificate2 Issue(X509Certificate2 ca, string name, params byte[] serial)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        var signer = ca.GetRSAPrivateKey() is { } rsa
            ? X509SignatureGenerator.CreateForRSA(rsa, RSASignaturePadding.Pkcs1)
            : X509SignatureGenerator.CreateForECDsa(ca.GetECDsaPrivateKey()!);
        using var issued = request.Create(ca.SubjectName, signer, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1), serial);
        return X509CertificateLoader.LoadCertificate(issued.RawData);
    }
}
