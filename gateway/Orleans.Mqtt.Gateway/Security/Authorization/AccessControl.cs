using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The gateway's authorization: the ACL file (<c>Mqtt:AclFile</c>), read at start and again whenever it changes, and the
/// <see cref="ClientAccess"/> each connection gets at CONNECT. A change is noticed by a file system watcher on the
/// file's folder and, because watchers miss changes on some volumes (a Kubernetes ConfigMap swaps a symbolic link), by
/// comparing the file's final target, time and size every <c>Mqtt:Acl:ReloadCheckInterval</c>. A file that does not parse
/// is logged with its line and counted; the rules in force stay.
/// </summary>
internal sealed partial class AccessControl : IDisposable
{
    private static readonly KeyValuePair<string, object?> ReloadOk = new("outcome", "ok");
    private static readonly KeyValuePair<string, object?> ReloadError = new("outcome", "error");

    private readonly string? _path;
    private readonly string? _fileName;
    private readonly AclRuleSource? _source;
    private readonly MqttMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Lock _reloadLock = new();
    private readonly FileSystemWatcher? _watcher;
    private readonly ITimer? _timer;
    private (string Target, DateTime Written, long Length) _seen;
    private string _appliedText = string.Empty;

    public AccessControl(MqttGatewayOptions options, MqttMetrics metrics, ILogger logger, TimeProvider timeProvider)
    {
        _metrics = metrics;
        _logger = logger;
        if (string.IsNullOrEmpty(options.AclFile))
        {
            return;
        }

        _path = Path.GetFullPath(options.AclFile);
        _fileName = Path.GetFileName(_path);
        _seen = Signature(_path);
        _appliedText = File.ReadAllText(_path);
        AclFile file;
        try
        {
            file = AclFile.Parse(_appliedText);
        }
        catch (AclFileException ex)
        {
            // The options validator names the same problem first; this only guards a file changed in between.
            throw new InvalidOperationException($"Mqtt:AclFile '{_path}' {ex.Message}", ex);
        }

        _source = new AclRuleSource(file);
        LogLoaded(_logger, _path, file.RuleCount, file.Users.Count, file.Patterns.Length);
        _watcher = new FileSystemWatcher(Path.GetDirectoryName(_path)!)
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        _watcher.Changed += OnFileEvent;
        _watcher.Created += OnFileEvent;
        _watcher.Renamed += OnFileEvent;
        _watcher.Deleted += OnFileEvent;
        _watcher.EnableRaisingEvents = true;
        var interval = options.Acl.ReloadCheckInterval;
        _timer = timeProvider.CreateTimer(_ => CheckForChange(), null, interval, interval);
    }

    /// <summary>Whether an ACL file is configured.</summary>
    public bool Enabled => _source is not null;

    /// <summary>
    /// The access of a new connection: null when there is neither an ACL file nor rules from the connection's
    /// credentials (everything allowed); otherwise the file's rules for it and <paramref name="connectionRules"/>, with
    /// whatever none of them allows denied.
    /// </summary>
    public ClientAccess? ForConnection(string clientId, string? userName, IReadOnlyList<AccessRule>? connectionRules)
    {
        if (_source is null && connectionRules is not { Count: > 0 })
        {
            return null;
        }

        return new ClientAccess(_source ?? AclRuleSource.None, clientId, userName, connectionRules);
    }

    /// <summary>Reads the file again if it changed since it was last read; returns whether new rules are in force.</summary>
    public bool CheckForChange()
    {
        if (_path is null || _source is null)
        {
            return false;
        }

        lock (_reloadLock)
        {
            string text;
            (string, DateTime, long) signature;
            try
            {
                signature = Signature(_path);
                if (signature == _seen)
                {
                    return false;
                }

                text = File.ReadAllText(_path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Missing for a moment while it is replaced: the next event or check reads it.
                LogUnreadable(_logger, _path, ex.Message);
                return false;
            }

            _seen = signature;
            if (text == _appliedText)
            {
                return false;
            }

            AclFile file;
            try
            {
                file = AclFile.Parse(text);
            }
            catch (AclFileException ex)
            {
                _metrics.AclReloads.Add(1, ReloadError);
                LogReloadRefused(_logger, _path, ex.Line, ex.Message);
                return false;
            }

            _appliedText = text;
            _source.Current = file;
            _metrics.AclReloads.Add(1, ReloadOk);
            LogReloaded(_logger, _path, file.RuleCount, file.Users.Count, file.Patterns.Length);
            return true;
        }
    }

    public void Dispose()
    {
        _watcher?.Dispose();
        _timer?.Dispose();
    }

    private void OnFileEvent(object sender, FileSystemEventArgs e)
    {
        // The folder may be shared (/tmp): only the file itself, or a ConfigMap's "..data" swap, is worth a look.
        if (e.Name is { } name && name != _fileName && !name.StartsWith("..", StringComparison.Ordinal))
        {
            return;
        }

        try
        {
            CheckForChange();
        }
        catch (Exception ex)
        {
            // A watcher callback must not throw; the periodic check tries again.
            LogUnreadable(_logger, _path!, ex.Message);
        }
    }

    /// <summary>The file's final target (through symbolic links), last write time and length: what a change alters.</summary>
    private static (string Target, DateTime Written, long Length) Signature(string path)
    {
        var info = new FileInfo(path);
        var target = info.LinkTarget is null ? info : info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? info;
        target.Refresh();
        return target.Exists ? (target.FullName, target.LastWriteTimeUtc, target.Length) : (target.FullName, DateTime.MinValue, -1);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "ACL file {Path} in force: {Rules} rules, {Users} users, {Patterns} patterns")]
    private static partial void LogLoaded(ILogger logger, string path, int rules, int users, int patterns);

    [LoggerMessage(Level = LogLevel.Information, Message = "ACL file {Path} reloaded: {Rules} rules, {Users} users, {Patterns} patterns")]
    private static partial void LogReloaded(ILogger logger, string path, int rules, int users, int patterns);

    [LoggerMessage(Level = LogLevel.Error, Message = "ACL file {Path} changed but is refused at line {Line} ({Problem}); the rules in force stay")]
    private static partial void LogReloadRefused(ILogger logger, string path, int line, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "ACL file {Path} could not be read ({Problem}); the rules in force stay")]
    private static partial void LogUnreadable(ILogger logger, string path, string problem);
}
