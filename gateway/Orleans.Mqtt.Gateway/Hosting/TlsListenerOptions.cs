namespace Orleans.Mqtt.Gateway;

/// <summary>The TLS listener.</summary>
public sealed class TlsListenerOptions : ListenerOptions
{
    /// <summary>PEM file with the server certificate (chain).</summary>
    public string? CertificateFile { get; set; }

    /// <summary>PEM file with the certificate's private key.</summary>
    public string? KeyFile { get; set; }

    /// <summary>Whether the TLS listener is on.</summary>
    public bool Enabled => Port > 0 && !string.IsNullOrEmpty(CertificateFile);
}
