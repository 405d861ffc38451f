using System.Security.Cryptography;
using System.Text;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The admin API's keys as a key file holds them: one <c>name:sha256-hex</c> line per key (the SHA-256 of the key's
/// UTF-8 bytes, lower- or upper-case hex); blank lines and lines starting with <c>#</c> are ignored. Only hashes are
/// stored, so the file (or the Kubernetes Secret it is mounted from) does not give the keys away.
/// </summary>
internal sealed class ApiKeySet
{
    private readonly (string Name, byte[] Hash)[] _keys;

    private ApiKeySet((string Name, byte[] Hash)[] keys) => _keys = keys;

    /// <summary>The names of the keys, in file order.</summary>
    public IEnumerable<string> Names => _keys.Select(k => k.Name);

    /// <summary>How many keys the set holds.</summary>
    public int Count => _keys.Length;

    /// <summary>Parses a key file's text; a bad line throws <see cref="FormatException"/> naming its number.</summary>
    public static ApiKeySet Parse(string text)
    {
        var keys = new List<(string, byte[])>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var lineNumber = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNumber++;
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var colon = line.LastIndexOf(':');
            var name = colon > 0 ? line[..colon].Trim() : string.Empty;
            var hex = colon > 0 ? line[(colon + 1)..].Trim() : string.Empty;
            if (name.Length == 0 || hex.Length != SHA256.HashSizeInBytes * 2 || !IsHex(hex))
            {
                throw new FormatException($"line {lineNumber}: expected 'name:sha256-hex' (a name, a colon and 64 hex digits)");
            }

            if (!names.Add(name))
            {
                throw new FormatException($"line {lineNumber}: key name '{name}' appears twice");
            }

            keys.Add((name, Convert.FromHexString(hex)));
        }

        return new ApiKeySet([.. keys]);
    }

    /// <summary>
    /// The name of the key <paramref name="presented"/> is, or null. Every stored hash is compared, each in constant
    /// time, so the time taken says nothing about which key (or how much of one) matched.
    /// </summary>
    public string? Find(ReadOnlySpan<char> presented)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        HashOf(presented, hash);
        string? found = null;
        foreach (var (name, stored) in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, stored))
            {
                found ??= name;
            }
        }

        return found;
    }

    /// <summary>The hex SHA-256 of a key, as a key file line stores it.</summary>
    public static string Hash(string key)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        HashOf(key, hash);
        return Convert.ToHexStringLower(hash);
    }

    /// <summary>A new random key: 32 bytes from the system's cryptographic generator, base64url without padding.</summary>
    public static string NewKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static void HashOf(ReadOnlySpan<char> key, Span<byte> hash)
    {
        var bytes = Encoding.UTF8.GetBytes(key.ToArray());
        SHA256.HashData(bytes, hash);
    }

    private static bool IsHex(string text)
    {
        foreach (var c in text)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return false;
            }
        }

        return true;
    }
}
