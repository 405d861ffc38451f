using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Checks the client certificate of a TLS handshake (<c>Mqtt:Tls:ClientCertificateMode</c>): it must chain to a CA of
/// <c>Mqtt:Tls:ClientCaFile</c> (and only to those: the system's roots are not trusted), be within its validity period,
/// allow client authentication when it names its uses, and not be revoked by the CRLs of <c>Mqtt:Tls:CrlFile</c>. A refused
/// handshake is counted as <c>mqtt.tls.handshakes_refused</c> by reason and logged (one line per interval).
/// </summary>
internal sealed partial class ClientCertificateValidator
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2", "Client Authentication");
    private static readonly KeyValuePair<string, object?> NoCertificate = new("reason", "no_certificate");
    private static readonly KeyValuePair<string, object?> Untrusted = new("reason", "untrusted");
    private static readonly KeyValuePair<string, object?> Expired = new("reason", "expired");
    private static readonly KeyValuePair<string, object?> Revoked = new("reason", "revoked");
    private static readonly KeyValuePair<string, object?> RevocationUnknown = new("reason", "revocation_unknown");

    private readonly bool _required;
    private readonly X509Certificate2Collection _roots = [];
    private readonly X509Certificate2Collection _intermediates = [];
    private readonly ReloadingFile<RevocationLists>? _crls;
    private readonly MqttMetrics _metrics;
    private readonly ILogger _logger;
    private readonly LogLimiter _logLimiter;

    /// <summary>Loads the CA file and the CRL file; a file that cannot be read throws, naming the setting.</summary>
    public ClientCertificateValidator(TlsListenerOptions options, MqttMetrics metrics, TimeProvider timeProvider, ILogger logger)
    {
        _required = options.ClientCertificateMode == TlsClientCertificateMode.Required;
        _metrics = metrics;
        _logger = logger;
        _logLimiter = new LogLimiter(timeProvider, LogLimiter.DefaultInterval);
        var authorities = new X509Certificate2Collection();
        try
        {
            authorities.ImportFromPemFile(options.ClientCaFile!);
        }
        catch (Exception ex) when (ex is CryptographicException or IOException)
        {
            throw new InvalidOperationException($"Mqtt:Tls:ClientCaFile '{options.ClientCaFile}' could not be read: {ex.Message}", ex);
        }

        if (authorities.Count == 0)
        {
            throw new InvalidOperationException($"Mqtt:Tls:ClientCaFile '{options.ClientCaFile}' holds no PEM certificate.");
        }

        foreach (var authority in authorities)
        {
            // A self-issued certificate is a root the chain may end at; the others are intermediates it may go through.
            (authority.SubjectName.RawData.AsSpan().SequenceEqual(authority.IssuerName.RawData) ? _roots : _intermediates).Add(authority);
        }

        if (!string.IsNullOrEmpty(options.CrlFile))
        {
            try
            {
                _crls = new ReloadingFile<RevocationLists>(
                    options.CrlFile,
                    bytes => RevocationLists.Parse(bytes, authorities),
                    ex => LogCrlReloadFailed(_logger, ex, options.CrlFile));
            }
            catch (Exception ex) when (ex is FormatException or IOException or CryptographicException)
            {
                throw new InvalidOperationException($"Mqtt:Tls:CrlFile '{options.CrlFile}' could not be read: {ex.Message}", ex);
            }
        }
    }

    /// <summary>The TLS callback: whether the handshake with the client at <paramref name="remote"/> may complete.</summary>
    public bool Validate(X509Certificate? presented, X509Chain? presentedChain, EndPoint? remote)
    {
        if (presented is null)
        {
            return !_required || Refuse(NoCertificate, remote, null, "no client certificate");
        }

        using var certificate = X509CertificateLoader.LoadCertificate(presented.GetRawCertData());
        using var chain = new X509Chain();
        var policy = chain.ChainPolicy;
        policy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        policy.CustomTrustStore.AddRange(_roots);
        policy.ExtraStore.AddRange(_intermediates);
        if (presentedChain is not null)
        {
            // The intermediates the client sent.
            policy.ExtraStore.AddRange(presentedChain.ChainPolicy.ExtraStore);
        }

        policy.RevocationMode = X509RevocationMode.NoCheck;
        policy.ApplicationPolicy.Add(ClientAuthentication);
        try
        {
            if (!chain.Build(certificate))
            {
                var expiredOnly = chain.ChainStatus.All(s => s.Status is X509ChainStatusFlags.NotTimeValid or X509ChainStatusFlags.NoError);
                var detail = string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Distinct());
                return Refuse(expiredOnly ? Expired : Untrusted, remote, certificate, detail);
            }

            if (_crls?.Current is { } crls)
            {
                // Every certificate of the chain but its root (a root is not revoked by a CRL: it is removed from the CA file).
                for (var i = 0; i < chain.ChainElements.Count - 1; i++)
                {
                    var element = chain.ChainElements[i].Certificate;
                    switch (crls.Check(element))
                    {
                        case RevocationStatus.Revoked:
                            return Refuse(Revoked, remote, certificate, $"'{element.Subject}' (serial {element.SerialNumber}) is revoked");
                        case RevocationStatus.Unknown:
                            return Refuse(RevocationUnknown, remote, certificate, $"Mqtt:Tls:CrlFile has no CRL of '{element.Issuer}'");
                    }
                }
            }

            return true;
        }
        finally
        {
            foreach (var element in chain.ChainElements)
            {
                element.Certificate.Dispose();
            }
        }
    }

    /// <summary>Sets up a TLS handshake: asks for a client certificate and checks it with <see cref="Validate"/>.</summary>
    public void Configure(SslServerAuthenticationOptions ssl, EndPoint? remote)
    {
        ssl.ClientCertificateRequired = true;
        ssl.RemoteCertificateValidationCallback = (_, certificate, chain, _) => Validate(certificate, chain, remote);
    }

    private bool Refuse(KeyValuePair<string, object?> reason, EndPoint? remote, X509Certificate2? certificate, string detail)
    {
        _metrics.TlsHandshakesRefused.Add(1, reason);
        if (_logLimiter.TryEnter(1, out var suppressed))
        {
            LogRefused(_logger, remote?.ToString() ?? "?", (string)reason.Value!, certificate?.Subject ?? "(none)", detail, suppressed);
        }

        return false;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "TLS handshake from {Remote} refused ({Reason}): client certificate '{Subject}': {Detail} ({Suppressed} more refused since the last such line)")]
    private static partial void LogRefused(ILogger logger, string remote, string reason, string subject, string detail, long suppressed);

    [LoggerMessage(Level = LogLevel.Error, Message = "Mqtt:Tls:CrlFile '{File}' changed but could not be read; the revocation lists read before stay in force")]
    private static partial void LogCrlReloadFailed(ILogger logger, Exception ex, string file);
}
