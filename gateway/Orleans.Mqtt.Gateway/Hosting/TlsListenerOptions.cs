namespace Orleans.Mqtt.Gateway;

/// <summary>The TLS listener.</summary>
public sealed class TlsListenerOptions : ListenerOptions
{
    /// <summary>PEM file with the server certificate (chain).</summary>
    public string? CertificateFile { get; set; }

    /// <summary>PEM file with the certificate's private key.</summary>
    public string? KeyFile { get; set; }

    /// <summary>
    /// Whether clients present a certificate in the TLS handshake (<c>Mqtt:Tls:ClientCertificateMode</c>): <c>none</c> (not asked
    /// for), <c>optional</c> (asked for; a client without one still connects, one with a bad one is refused) or <c>required</c>.
    /// </summary>
    public TlsClientCertificateMode ClientCertificateMode { get; set; } = TlsClientCertificateMode.None;

    /// <summary>PEM file with the CA certificates client certificates must chain to (<c>Mqtt:Tls:ClientCaFile</c>).</summary>
    public string? ClientCaFile { get; set; }

    /// <summary>
    /// PEM (or DER) file with the certificate revocation lists of the client CAs (<c>Mqtt:Tls:CrlFile</c>); re-read when it
    /// changes. When set, a client certificate whose issuer has no CRL in it is refused.
    /// </summary>
    public string? CrlFile { get; set; }

    /// <summary>
    /// Which name of a client certificate becomes the connection's user name (<c>Mqtt:Tls:ClientIdentity</c>): <c>cn</c> (the
    /// subject's common name), <c>san-dns</c>, <c>san-email</c> or <c>san-uri</c> (the first subject alternative name of that kind).
    /// </summary>
    public string ClientIdentity { get; set; } = ClientCertificateNames.CommonName;

    /// <summary>Whether the TLS listener is on.</summary>
    public bool Enabled => Port > 0 && !string.IsNullOrEmpty(CertificateFile);

    /// <summary>Whether the TLS listener asks clients for a certificate.</summary>
    public bool ClientCertificatesEnabled => Enabled && ClientCertificateMode != TlsClientCertificateMode.None;
}

/// <summary>Whether the TLS listener asks for client certificates (<c>Mqtt:Tls:ClientCertificateMode</c>).</summary>
public enum TlsClientCertificateMode
{
    /// <summary>Clients are not asked for a certificate.</summary>
    None,

    /// <summary>Clients are asked; one without a certificate connects, one with a certificate that fails the checks is refused.</summary>
    Optional,

    /// <summary>Clients without a certificate that passes the checks are refused at the handshake.</summary>
    Required,
}
