using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Orleans.Mqtt.Security;

/// <summary>
/// The users allowed to connect, loaded from a text file with one <c>username:encoded-hash</c> per line
/// (see <see cref="PasswordHasher"/>); lines starting with <c>'#'</c> and blank lines are ignored.
/// </summary>
/// <remarks>
/// An instance is immutable apart from its credential cache and is safe for concurrent <see cref="Verify"/> calls.
/// To pick up changes to the file, load a new instance.
/// </remarks>
public sealed class UsersFile
{
    // Keys the credential cache; random per process so cached digests are useless outside it.
    private static readonly byte[] CacheKey = RandomNumberGenerator.GetBytes(32);

    // Verified for unknown users so that the response time does not reveal which usernames exist.
    private static readonly Lazy<string> UnknownUserHash = new(() => PasswordHasher.Hash(Guid.NewGuid().ToString()));

    private readonly Dictionary<string, string> _hashes;

    // username -> keyed SHA-256 of the last password that passed PBKDF2, so reconnects skip the slow hash.
    private readonly ConcurrentDictionary<string, byte[]> _verified = new(StringComparer.Ordinal);

    private int _slowVerifications;

    private UsersFile(Dictionary<string, string> hashes)
    {
        _hashes = hashes;
    }

    /// <summary>The number of users.</summary>
    public int Count => _hashes.Count;

    /// <summary>Whether the file holds <paramref name="username"/>.</summary>
    public bool Contains(string username) => _hashes.ContainsKey(username);

    /// <summary>The number of verifications that ran the slow hash; for tests and diagnostics.</summary>
    internal int SlowVerifications => Volatile.Read(ref _slowVerifications);

    /// <summary>Loads the users file at <paramref name="path"/>.</summary>
    /// <param name="path">The file path.</param>
    /// <returns>The loaded users.</returns>
    /// <exception cref="FormatException">A line is malformed; the message names the file and line number.</exception>
    public static UsersFile Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);

        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        var lineNumber = 0;
        foreach (var rawLine in File.ReadLines(path))
        {
            lineNumber++;
            var line = rawLine.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var separator = line.IndexOf(':');
            if (separator < 0)
            {
                throw LineError(path, lineNumber, "expected 'username:encoded-hash'");
            }

            var username = line[..separator].TrimEnd();
            var encoded = line[(separator + 1)..].TrimStart();
            if (username.Length == 0)
            {
                throw LineError(path, lineNumber, "the username is empty");
            }

            if (!PasswordHasher.IsWellFormed(encoded))
            {
                throw LineError(path, lineNumber, $"the password hash of user '{username}' is not a valid '$pbkdf2-sha512$...' hash");
            }

            if (!hashes.TryAdd(username, encoded))
            {
                throw LineError(path, lineNumber, $"user '{username}' appears more than once");
            }
        }

        return new UsersFile(hashes);
    }

    /// <summary>Returns whether <paramref name="username"/> exists and <paramref name="passwordUtf8"/> is its password.</summary>
    /// <param name="username">The username.</param>
    /// <param name="passwordUtf8">The password as UTF-8 bytes.</param>
    /// <returns><see langword="true"/> if the credentials are valid; <see langword="false"/> otherwise, including for an
    /// unknown user.</returns>
    public bool Verify(string username, ReadOnlySpan<byte> passwordUtf8)
    {
        ArgumentNullException.ThrowIfNull(username);

        if (!_hashes.TryGetValue(username, out var encoded))
        {
            PasswordHasher.Verify(passwordUtf8, UnknownUserHash.Value);
            return false;
        }

        Span<byte> digest = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(CacheKey, passwordUtf8, digest);
        if (_verified.TryGetValue(username, out var cached) && CryptographicOperations.FixedTimeEquals(cached, digest))
        {
            return true;
        }

        // Any other password, including a different one for a cached user, pays the full slow hash.
        Interlocked.Increment(ref _slowVerifications);
        if (!PasswordHasher.Verify(passwordUtf8, encoded))
        {
            return false;
        }

        _verified[username] = digest.ToArray();
        return true;
    }

    /// <summary>
    /// Adds <paramref name="username"/> to the users file at <paramref name="path"/>, or replaces its password, keeping
    /// the other lines and comments. The file is created if missing and replaced atomically (temporary file, then move).
    /// </summary>
    /// <param name="path">The file path.</param>
    /// <param name="username">The username: non-empty, no <c>':'</c>, no line breaks, no surrounding whitespace, not
    /// starting with <c>'#'</c>.</param>
    /// <param name="password">The password.</param>
    /// <param name="iterations">The PBKDF2 iteration count; lower it only in tests.</param>
    /// <exception cref="ArgumentException"><paramref name="username"/> cannot be stored in the file.</exception>
    public static void AddOrUpdate(string path, string username, string password, int iterations = PasswordHasher.DefaultIterations)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(username);
        ArgumentNullException.ThrowIfNull(password);
        ValidateUsername(username);

        var entry = username + ":" + PasswordHasher.Hash(password, iterations);
        var lines = File.Exists(path) ? new List<string>(File.ReadAllLines(path)) : [];
        var replaced = false;
        for (var i = 0; i < lines.Count; i++)
        {
            if (IsLineOfUser(lines[i], username))
            {
                if (replaced)
                {
                    // Leave a single line per user even if the file had duplicates.
                    lines.RemoveAt(i--);
                    continue;
                }

                lines[i] = entry;
                replaced = true;
            }
        }

        if (!replaced)
        {
            lines.Add(entry);
        }

        WriteAtomically(path, lines);
    }

    private static bool IsLineOfUser(string line, string username)
    {
        var trimmed = line.AsSpan().Trim();
        if (trimmed.IsEmpty || trimmed[0] == '#')
        {
            return false;
        }

        var separator = trimmed.IndexOf(':');
        return separator >= 0 && trimmed[..separator].TrimEnd().SequenceEqual(username);
    }

    private static void ValidateUsername(string username)
    {
        if (username.Length == 0
            || username.AsSpan().IndexOfAny(":\r\n\0") >= 0
            || username[0] == '#'
            || char.IsWhiteSpace(username[0])
            || char.IsWhiteSpace(username[^1]))
        {
            throw new ArgumentException(
                $"Username '{username}' cannot be stored: it must be non-empty, contain no ':' or line breaks, "
                + "not start with '#' and not start or end with whitespace.",
                nameof(username));
        }
    }

    private static void WriteAtomically(string path, List<string> lines)
    {
        var fullPath = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(fullPath)!;
        Directory.CreateDirectory(directory);

        // Same directory, so the final move is a rename on one file system.
        var tempPath = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            // Password hashes are secrets: keep an existing file's mode, otherwise owner read/write only.
            options.UnixCreateMode = File.Exists(fullPath)
                ? File.GetUnixFileMode(fullPath)
                : UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using (var stream = new FileStream(tempPath, options))
            using (var writer = new StreamWriter(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)))
            {
                foreach (var line in lines)
                {
                    writer.Write(line);
                    writer.Write('\n');
                }

                writer.Flush();
                stream.Flush(flushToDisk: true);
            }

            File.Move(tempPath, fullPath, overwrite: true);
        }
        catch
        {
            File.Delete(tempPath);
            throw;
        }
    }

    private static FormatException LineError(string path, int lineNumber, string problem) =>
        new($"Users file '{path}', line {lineNumber}: {problem}.");
}
