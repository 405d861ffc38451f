using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Orleans.Mqtt.Gateway;

/// <summary>Whether a certificate is revoked by the CRLs of <c>Mqtt:Tls:CrlFile</c>.</summary>
internal enum RevocationStatus
{
    Good,
    Revoked,

    /// <summary>No CRL of the certificate's issuer is loaded.</summary>
    Unknown,
}

/// <summary>
/// The certificate revocation lists of <c>Mqtt:Tls:CrlFile</c> (one or more PEM <c>X509 CRL</c> blocks, or one DER list), each
/// checked at load to be signed by a certificate of <c>Mqtt:Tls:ClientCaFile</c>. .NET's chain builder takes no CRL from the
/// caller (on Linux it reads only its own cache), so the lists are read here (RFC 5280 section 5) and the serial numbers of
/// each issuer kept in a set.
/// </summary>
internal sealed class RevocationLists
{
    private const string PemLabel = "X509 CRL";

    // Issuer name (DER, hex) → revoked serial numbers (hex, without leading zero bytes).
    private readonly Dictionary<string, HashSet<string>> _revoked;

    private RevocationLists(Dictionary<string, HashSet<string>> revoked) => _revoked = revoked;

    /// <summary>The number of lists loaded.</summary>
    public int Count => _revoked.Count;

    /// <summary>Whether <paramref name="certificate"/> is revoked by the CRL of its issuer.</summary>
    public RevocationStatus Check(X509Certificate2 certificate)
    {
        if (!_revoked.TryGetValue(Convert.ToHexString(certificate.IssuerName.RawData), out var serials))
        {
            return RevocationStatus.Unknown;
        }

        return serials.Contains(SerialKey(certificate.SerialNumberBytes.Span)) ? RevocationStatus.Revoked : RevocationStatus.Good;
    }

    /// <summary>
    /// Reads the lists in <paramref name="content"/> (PEM or DER) and checks each is signed by one of <paramref name="issuers"/>.
    /// </summary>
    /// <exception cref="FormatException">A list is malformed, or no issuer signed it; the message says which.</exception>
    public static RevocationLists Parse(byte[] content, X509Certificate2Collection issuers)
    {
        var revoked = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var der in DerBlocks(content))
        {
            var (issuer, serials) = ParseOne(der, issuers);
            if (revoked.TryGetValue(issuer, out var existing))
            {
                existing.UnionWith(serials);
            }
            else
            {
                revoked[issuer] = serials;
            }
        }

        return new RevocationLists(revoked);
    }

    private static List<byte[]> DerBlocks(byte[] content)
    {
        var text = System.Text.Encoding.ASCII.GetString(content);
        var blocks = new List<byte[]>();
        var rest = text.AsSpan();
        while (PemEncoding.TryFind(rest, out var fields))
        {
            if (rest[fields.Label].SequenceEqual(PemLabel))
            {
                blocks.Add(Convert.FromBase64String(rest[fields.Base64Data].ToString()));
            }

            rest = rest[fields.Location.End.Value..];
        }

        if (blocks.Count == 0)
        {
            if (content.Length > 0 && content[0] == 0x30)
            {
                blocks.Add(content);
            }
            else
            {
                throw new FormatException($"no '-----BEGIN {PemLabel}-----' block and not a DER CRL");
            }
        }

        return blocks;
    }

    private static (string Issuer, HashSet<string> Serials) ParseOne(byte[] der, X509Certificate2Collection issuers)
    {
        try
        {
            // CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
            var list = new AsnReader(der, AsnEncodingRules.DER).ReadSequence();
            var tbsEncoded = list.PeekEncodedValue();
            var tbs = list.ReadSequence();
            var signatureAlgorithm = list.ReadSequence().ReadObjectIdentifier();
            var signature = list.ReadBitString(out _);

            if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
            {
                tbs.ReadInteger(); // version
            }

            tbs.ReadSequence(); // signature (repeated in signatureAlgorithm)
            var issuer = tbs.ReadEncodedValue().ToArray();
            SkipTime(tbs); // thisUpdate
            if (tbs.HasData && IsTime(tbs.PeekTag()))
            {
                SkipTime(tbs); // nextUpdate
            }

            var serials = new HashSet<string>(StringComparer.Ordinal);
            if (tbs.HasData && tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
            {
                var entries = tbs.ReadSequence();
                while (entries.HasData)
                {
                    var entry = entries.ReadSequence();
                    serials.Add(SerialKey(entry.ReadIntegerBytes().Span));
                }
            }

            var issuerName = new X500DistinguishedName(issuer);
            if (!SignedByOneOf(tbsEncoded.Span, signatureAlgorithm, signature, issuerName, issuers))
            {
                throw new FormatException($"the CRL of '{issuerName.Name}' is not signed by a certificate of Mqtt:Tls:ClientCaFile (or uses an unsupported signature algorithm {signatureAlgorithm})");
            }

            return (Convert.ToHexString(issuer), serials);
        }
        catch (AsnContentException ex)
        {
            throw new FormatException($"malformed CRL: {ex.Message}", ex);
        }
    }

    private static bool SignedByOneOf(ReadOnlySpan<byte> tbs, string algorithm, byte[] signature, X500DistinguishedName issuer, X509Certificate2Collection issuers)
    {
        var (hash, ecdsa) = algorithm switch
        {
            "1.2.840.113549.1.1.11" => (HashAlgorithmName.SHA256, false),
            "1.2.840.113549.1.1.12" => (HashAlgorithmName.SHA384, false),
            "1.2.840.113549.1.1.13" => (HashAlgorithmName.SHA512, false),
            "1.2.840.10045.4.3.2" => (HashAlgorithmName.SHA256, true),
            "1.2.840.10045.4.3.3" => (HashAlgorithmName.SHA384, true),
            "1.2.840.10045.4.3.4" => (HashAlgorithmName.SHA512, true),
            _ => (default(HashAlgorithmName), false),
        };
        if (hash.Name is null)
        {
            return false;
        }

        foreach (var candidate in issuers)
        {
            if (!candidate.SubjectName.RawData.AsSpan().SequenceEqual(issuer.RawData))
            {
                continue;
            }

            if (ecdsa)
            {
                using var key = candidate.GetECDsaPublicKey();
                if (key is not null && key.VerifyData(tbs, signature, hash, DSASignatureFormat.Rfc3279DerSequence))
                {
                    return true;
                }
            }
            else
            {
                using var key = candidate.GetRSAPublicKey();
                if (key is not null && key.VerifyData(tbs, signature, hash, RSASignaturePadding.Pkcs1))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static bool IsTime(Asn1Tag tag) => tag.HasSameClassAndValue(Asn1Tag.UtcTime) || tag.HasSameClassAndValue(Asn1Tag.GeneralizedTime);

    private static void SkipTime(AsnReader reader)
    {
        if (!IsTime(reader.PeekTag()))
        {
            throw new AsnContentException("expected a time");
        }

        reader.ReadEncodedValue();
    }

    private static string SerialKey(ReadOnlySpan<byte> bigEndian)
    {
        while (bigEndian.Length > 1 && bigEndian[0] == 0)
        {
            bigEndian = bigEndian[1..];
        }

        return Convert.ToHexString(bigEndian);
    }
}
