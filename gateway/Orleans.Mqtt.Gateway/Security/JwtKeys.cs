using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.IdentityModel.Tokens;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The keys tokens may be signed with, from every source <c>Mqtt:Jwt</c> configures: the shared secret, the PEM public key
/// file (both read once at start), the JWKS file (read again when it changes) and the JWKS URL (fetched at start, every
/// <c>Mqtt:Jwt:JwksRefreshInterval</c>, and on a key id no key has, at most once per <c>Mqtt:Jwt:JwksMinRefreshInterval</c>).
/// </summary>
internal sealed partial class JwtKeys : IDisposable
{
    private readonly List<SecurityKey> _fixed = [];
    private readonly ReloadingFile<IReadOnlyList<SecurityKey>>? _jwksFile;
    private readonly Uri? _jwksUrl;
    private readonly HttpClient? _http;
    private readonly ITimer? _refreshTimer;
    private readonly SemaphoreSlim _fetchLock = new(1, 1);
    private readonly TimeProvider _timeProvider;
    private readonly TimeSpan _minRefreshInterval;
    private readonly ILogger _logger;
    private volatile IReadOnlyList<SecurityKey> _urlKeys = [];
    private long _lastFetch;
    private bool _fetched;

    /// <summary>Reads the configured key files; one that cannot be read throws, naming the setting.</summary>
    public JwtKeys(JwtOptions options, TimeProvider timeProvider, ILogger logger)
    {
        _timeProvider = timeProvider;
        _minRefreshInterval = options.JwksMinRefreshInterval;
        _logger = logger;
        if (Secret(options) is { } secret)
        {
            _fixed.Add(new SymmetricSecurityKey(secret));
        }

        if (!string.IsNullOrEmpty(options.PublicKeyFile))
        {
            _fixed.AddRange(Startup("Mqtt:Jwt:PublicKeyFile", options.PublicKeyFile, () => PublicKeys(File.ReadAllText(options.PublicKeyFile))));
        }

        if (!string.IsNullOrEmpty(options.JwksFile))
        {
            var file = options.JwksFile;
            _jwksFile = Startup("Mqtt:Jwt:JwksFile", file, () => new ReloadingFile<IReadOnlyList<SecurityKey>>(
                file,
                bytes => KeySet(Encoding.UTF8.GetString(bytes)),
                ex => LogJwksFileReloadFailed(_logger, ex, file)));
        }

        if (!string.IsNullOrEmpty(options.JwksUrl))
        {
            _jwksUrl = new Uri(options.JwksUrl);
            _http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            _refreshTimer = timeProvider.CreateTimer(_ => _ = RefreshAsync(force: true), null, TimeSpan.Zero, options.JwksRefreshInterval);
        }
    }

    /// <summary>The keys in force now.</summary>
    public IReadOnlyList<SecurityKey> Current
    {
        get
        {
            var fromFile = _jwksFile?.Current ?? [];
            var fromUrl = _urlKeys;
            if (fromFile.Count == 0 && fromUrl.Count == 0)
            {
                return _fixed;
            }

            var all = new List<SecurityKey>(_fixed.Count + fromFile.Count + fromUrl.Count);
            all.AddRange(_fixed);
            all.AddRange(fromFile);
            all.AddRange(fromUrl);
            return all;
        }
    }

    /// <summary>Whether a key has key id <paramref name="keyId"/>.</summary>
    public static bool HasKeyId(IReadOnlyList<SecurityKey> keys, string keyId)
    {
        foreach (var key in keys)
        {
            if (string.Equals(key.KeyId, keyId, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Fetches the JWKS URL again for a token whose key id no key has, unless it was fetched less than
    /// <c>Mqtt:Jwt:JwksMinRefreshInterval</c> ago; true when the keys may have changed.
    /// </summary>
    public async Task<bool> RefreshForUnknownKeyAsync()
    {
        if (_jwksUrl is null)
        {
            return false;
        }

        return await RefreshAsync(force: false).ConfigureAwait(false);
    }

    public void Dispose()
    {
        _refreshTimer?.Dispose();
        _http?.Dispose();
    }

    private async Task<bool> RefreshAsync(bool force)
    {
        await _fetchLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!force && _fetched && _timeProvider.GetElapsedTime(_lastFetch) < _minRefreshInterval)
            {
                return false;
            }

            _fetched = true;
            _lastFetch = _timeProvider.GetTimestamp();
            try
            {
                var json = await _http!.GetStringAsync(_jwksUrl).ConfigureAwait(false);
                _urlKeys = KeySet(json);
                LogJwksFetched(_logger, _jwksUrl!, _urlKeys.Count);
                return true;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or ArgumentException or System.Text.Json.JsonException or InvalidOperationException)
            {
                LogJwksFetchFailed(_logger, ex, _jwksUrl!);
                return false;
            }
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        finally
        {
            _fetchLock.Release();
        }
    }

    private static byte[]? Secret(JwtOptions options)
    {
        if (!string.IsNullOrEmpty(options.Secret))
        {
            return Encoding.UTF8.GetBytes(options.Secret);
        }

        if (!string.IsNullOrEmpty(options.SecretFile))
        {
            return Startup("Mqtt:Jwt:SecretFile", options.SecretFile, () => Encoding.UTF8.GetBytes(File.ReadAllText(options.SecretFile).Trim()));
        }

        return null;
    }

    /// <summary>The RSA and EC public keys (<c>PUBLIC KEY</c>) and certificates (<c>CERTIFICATE</c>) of a PEM text.</summary>
    internal static List<SecurityKey> PublicKeys(string pem)
    {
        var keys = new List<SecurityKey>();
        var rest = pem.AsSpan();
        while (PemEncoding.TryFind(rest, out var fields))
        {
            var label = rest[fields.Label];
            var der = Convert.FromBase64String(rest[fields.Base64Data].ToString());
            if (label.SequenceEqual("CERTIFICATE"))
            {
                keys.Add(new X509SecurityKey(X509CertificateLoader.LoadCertificate(der)));
            }
            else if (label.SequenceEqual("PUBLIC KEY"))
            {
                keys.Add(PublicKey(der));
            }

            rest = rest[fields.Location.End.Value..];
        }

        if (keys.Count == 0)
        {
            throw new FormatException("no '-----BEGIN PUBLIC KEY-----' or '-----BEGIN CERTIFICATE-----' block");
        }

        return keys;
    }

    private static SecurityKey PublicKey(byte[] subjectPublicKeyInfo)
    {
        try
        {
            var rsa = RSA.Create();
            rsa.ImportSubjectPublicKeyInfo(subjectPublicKeyInfo, out _);
            return new RsaSecurityKey(rsa);
        }
        catch (CryptographicException)
        {
            var ecdsa = ECDsa.Create();
            ecdsa.ImportSubjectPublicKeyInfo(subjectPublicKeyInfo, out _);
            return new ECDsaSecurityKey(ecdsa);
        }
    }

    private static IReadOnlyList<SecurityKey> KeySet(string json) => [.. new JsonWebKeySet(json).GetSigningKeys()];

    private static T Startup<T>(string setting, string file, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or ArgumentException or CryptographicException or System.Text.Json.JsonException)
        {
            throw new InvalidOperationException($"{setting} '{file}' could not be read: {ex.Message}", ex);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "JWKS {Url} fetched: {Count} signing keys")]
    private static partial void LogJwksFetched(ILogger logger, Uri url, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "JWKS {Url} could not be fetched; the keys fetched before stay in force")]
    private static partial void LogJwksFetchFailed(ILogger logger, Exception ex, Uri url);

    [LoggerMessage(Level = LogLevel.Error, Message = "Mqtt:Jwt:JwksFile '{File}' changed but could not be read; the keys read before stay in force")]
    private static partial void LogJwksFileReloadFailed(ILogger logger, Exception ex, string file);
}
