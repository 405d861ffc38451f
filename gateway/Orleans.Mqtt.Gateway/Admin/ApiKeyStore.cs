using Microsoft.Extensions.Options;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The keys of <c>Http:ApiKeysFile</c>, read at start (the options validator has checked the file) and read again when
/// the file's modification time changes, checked at most once a second when a call comes in: a key added with
/// <c>./run.sh api-key add</c>, or a Secret update kubelet writes, takes effect without a restart. A file that no longer
/// parses keeps the keys in force and logs why. Null <see cref="Current"/>: no key file, so only loopback may call.
/// </summary>
internal sealed partial class ApiKeyStore
{
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(1);
    private readonly string? _path;
    private readonly TimeProvider _time;
    private readonly ILogger<ApiKeyStore> _logger;
    private readonly Lock _lock = new();
    private ApiKeySet? _keys;
    private DateTime _modified;
    private long _lastCheck;

    public ApiKeyStore(IOptions<HttpEndpointOptions> options, TimeProvider time, ILogger<ApiKeyStore> logger)
    {
        _path = string.IsNullOrWhiteSpace(options.Value.ApiKeysFile) ? null : options.Value.ApiKeysFile;
        _time = time;
        _logger = logger;
        if (_path is not null)
        {
            _modified = File.GetLastWriteTimeUtc(_path);
            _keys = ApiKeySet.Parse(File.ReadAllText(_path));
            _lastCheck = time.GetTimestamp();
            LogLoaded(logger, _path, _keys.Count);
        }
    }

    /// <summary>The keys in force, or null when no key file is configured.</summary>
    public ApiKeySet? Current
    {
        get
        {
            if (_path is null)
            {
                return null;
            }

            var now = _time.GetTimestamp();
            lock (_lock)
            {
                if (_time.GetElapsedTime(_lastCheck, now) >= CheckInterval)
                {
                    _lastCheck = now;
                    ReloadIfChanged(_path);
                }

                return _keys;
            }
        }
    }

    private void ReloadIfChanged(string path)
    {
        try
        {
            var modified = File.GetLastWriteTimeUtc(path);
            if (modified == _modified)
            {
                return;
            }

            _keys = ApiKeySet.Parse(File.ReadAllText(path));
            _modified = modified;
            LogLoaded(_logger, path, _keys.Count);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            LogReloadFailed(_logger, path, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Admin API keys read from {Path}: {Count} keys")]
    private static partial void LogLoaded(ILogger logger, string path, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Admin API key file {Path} could not be read again ({Error}); the keys read before stay in force")]
    private static partial void LogReloadFailed(ILogger logger, string path, string error);
}
