namespace Orleans.Mqtt.Gateway;

/// <summary>
/// A file read into a <typeparamref name="T"/> and read again when its time stamp or length changes (checked at each use:
/// one <c>stat</c>, against a TLS handshake or a signature check). A file that no longer reads keeps the last good value
/// in force and is reported once per change.
/// </summary>
/// <typeparam name="T">What the file holds, parsed.</typeparam>
internal sealed class ReloadingFile<T>
    where T : class
{
    private readonly string _path;
    private readonly Func<byte[], T> _parse;
    private readonly Action<Exception> _reloadFailed;
    private readonly Lock _lock = new();
    private (DateTime Time, long Length) _stamp;
    private T _value;

    /// <summary>Reads <paramref name="path"/> now; a file that cannot be read or parsed throws (a startup error).</summary>
    /// <param name="path">The file.</param>
    /// <param name="parse">Turns the file's bytes into the value; throws on a bad file.</param>
    /// <param name="reloadFailed">Told when a changed file does not read (the old value stays).</param>
    public ReloadingFile(string path, Func<byte[], T> parse, Action<Exception> reloadFailed)
    {
        _path = path;
        _parse = parse;
        _reloadFailed = reloadFailed;
        _stamp = Stamp();
        _value = parse(File.ReadAllBytes(path));
    }

    /// <summary>The value of the file as it is now (or as it last read well).</summary>
    public T Current
    {
        get
        {
            var stamp = Stamp();
            lock (_lock)
            {
                if (stamp != _stamp)
                {
                    _stamp = stamp;
                    try
                    {
                        _value = _parse(File.ReadAllBytes(_path));
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or ArgumentException or System.Text.Json.JsonException or InvalidOperationException or System.Security.Cryptography.CryptographicException)
                    {
                        _reloadFailed(ex);
                    }
                }

                return _value;
            }
        }
    }

    private (DateTime Time, long Length) Stamp()
    {
        var info = new FileInfo(_path);
        return info.Exists ? (info.LastWriteTimeUtc, info.Length) : default;
    }
}
