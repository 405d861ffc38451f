using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The name of a client certificate that becomes the connection's user name (<c>Mqtt:Tls:ClientIdentity</c>): the subject's
/// common name, or the first subject alternative name of a kind.
/// </summary>
internal static class ClientCertificateNames
{
    /// <summary>The subject's common name (CN).</summary>
    public const string CommonName = "cn";

    /// <summary>The first DNS name of the subject alternative names.</summary>
    public const string SanDns = "san-dns";

    /// <summary>The first e-mail address (rfc822Name) of the subject alternative names.</summary>
    public const string SanEmail = "san-email";

    /// <summary>The first URI of the subject alternative names.</summary>
    public const string SanUri = "san-uri";

    /// <summary>Every value <c>Mqtt:Tls:ClientIdentity</c> may take.</summary>
    public static readonly string[] Kinds = [CommonName, SanDns, SanEmail, SanUri];

    private const string CommonNameOid = "2.5.4.3";
    private const string SubjectAltNameOid = "2.5.29.17";

    // GeneralName choices (RFC 5280 section 4.2.1.6).
    private static readonly Asn1Tag Rfc822Name = new(TagClass.ContextSpecific, 1);
    private static readonly Asn1Tag DnsName = new(TagClass.ContextSpecific, 2);
    private static readonly Asn1Tag UniformResourceIdentifier = new(TagClass.ContextSpecific, 6);

    /// <summary>The name of kind <paramref name="kind"/> in <paramref name="certificate"/>, or null when it has none.</summary>
    public static string? Get(X509Certificate2 certificate, string kind)
    {
        if (kind == CommonName)
        {
            foreach (var rdn in certificate.SubjectName.EnumerateRelativeDistinguishedNames())
            {
                if (rdn.GetSingleElementType().Value == CommonNameOid && rdn.GetSingleElementValue() is { Length: > 0 } cn)
                {
                    return cn;
                }
            }

            return null;
        }

        var tag = kind switch
        {
            SanDns => DnsName,
            SanEmail => Rfc822Name,
            SanUri => UniformResourceIdentifier,
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown client identity kind"),
        };
        foreach (var extension in certificate.Extensions)
        {
            if (extension.Oid?.Value == SubjectAltNameOid)
            {
                return FirstName(extension.RawData, tag);
            }
        }

        return null;
    }

    private static string? FirstName(byte[] subjectAltName, Asn1Tag tag)
    {
        try
        {
            var names = new AsnReader(subjectAltName, AsnEncodingRules.DER).ReadSequence();
            while (names.HasData)
            {
                if (names.PeekTag().HasSameClassAndValue(tag))
                {
                    return names.ReadCharacterString(UniversalTagNumber.IA5String, tag);
                }

                names.ReadEncodedValue();
            }
        }
        catch (AsnContentException)
        {
            // A malformed extension names nobody.
        }

        return null;
    }
}
