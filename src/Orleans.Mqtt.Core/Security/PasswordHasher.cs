using System.Globalization;
using System.Security.Cryptography;

namespace Orleans.Mqtt.Security;

/// <summary>
/// Salted, deliberately slow password hashing with PBKDF2-HMAC-SHA512, encoded as
/// <c>$pbkdf2-sha512$&lt;iterations&gt;$&lt;base64 salt&gt;$&lt;base64 hash&gt;</c>.
/// </summary>
public static class PasswordHasher
{
    /// <summary>The default iteration count (the OWASP 2023 recommendation for PBKDF2-HMAC-SHA512).</summary>
    public const int DefaultIterations = 210_000;

    /// <summary>The length of the random salt, in bytes.</summary>
    public const int SaltLength = 16;

    /// <summary>The length of the derived hash, in bytes.</summary>
    public const int HashLength = 64;

    private const string Prefix = "$pbkdf2-sha512$";

    // Bounds on what Verify accepts, so that a hand-edited file cannot ask for absurd work or buffers.
    private const int MinSaltLength = 8;
    private const int MaxSaltLength = 64;

    /// <summary>Hashes <paramref name="password"/> (as UTF-8) with a fresh random salt.</summary>
    /// <param name="password">The password.</param>
    /// <param name="iterations">The PBKDF2 iteration count; lower it only in tests.</param>
    /// <returns>The encoded hash.</returns>
    public static string Hash(string password, int iterations = DefaultIterations)
    {
        ArgumentNullException.ThrowIfNull(password);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(iterations);

        Span<byte> salt = stackalloc byte[SaltLength];
        RandomNumberGenerator.Fill(salt);
        Span<byte> hash = stackalloc byte[HashLength];
        Rfc2898DeriveBytes.Pbkdf2(password, salt, hash, iterations, HashAlgorithmName.SHA512);

        return string.Create(
            CultureInfo.InvariantCulture,
            $"{Prefix}{iterations}${Convert.ToBase64String(salt)}${Convert.ToBase64String(hash)}");
    }

    /// <summary>Returns whether <paramref name="passwordUtf8"/> matches the encoded hash.</summary>
    /// <param name="passwordUtf8">The candidate password as UTF-8 bytes.</param>
    /// <param name="encoded">An encoded hash produced by <see cref="Hash"/>.</param>
    /// <returns><see langword="true"/> if the password matches; <see langword="false"/> if not or if
    /// <paramref name="encoded"/> is malformed.</returns>
    public static bool Verify(ReadOnlySpan<byte> passwordUtf8, string encoded)
    {
        Span<byte> salt = stackalloc byte[MaxSaltLength];
        Span<byte> expected = stackalloc byte[HashLength];
        if (!TryParse(encoded, out var iterations, salt, out var saltLength, expected))
        {
            return false;
        }

        Span<byte> actual = stackalloc byte[HashLength];
        Rfc2898DeriveBytes.Pbkdf2(passwordUtf8, salt[..saltLength], actual, iterations, HashAlgorithmName.SHA512);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    /// <summary>Returns whether <paramref name="encoded"/> has the shape <see cref="Verify"/> accepts.</summary>
    internal static bool IsWellFormed(string? encoded)
    {
        Span<byte> salt = stackalloc byte[MaxSaltLength];
        Span<byte> hash = stackalloc byte[HashLength];
        return TryParse(encoded, out _, salt, out _, hash);
    }

    private static bool TryParse(string? encoded, out int iterations, Span<byte> salt, out int saltLength, Span<byte> hash)
    {
        iterations = 0;
        saltLength = 0;
        if (encoded is null || !encoded.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = encoded.AsSpan(Prefix.Length);
        var first = rest.IndexOf('$');
        if (first < 0)
        {
            return false;
        }

        var iterationsText = rest[..first];
        rest = rest[(first + 1)..];
        var second = rest.IndexOf('$');
        if (second < 0)
        {
            return false;
        }

        var saltText = rest[..second];
        var hashText = rest[(second + 1)..];

        // Digits only: no sign, no whitespace, no leading zero, so that each hash has exactly one encoding.
        if (iterationsText.IsEmpty || iterationsText[0] == '0'
            || !int.TryParse(iterationsText, NumberStyles.None, CultureInfo.InvariantCulture, out iterations)
            || iterations <= 0)
        {
            return false;
        }

        if (!Convert.TryFromBase64Chars(saltText, salt, out saltLength) || saltLength < MinSaltLength)
        {
            return false;
        }

        // One spare byte makes an over-long hash fail to decode instead of being truncated.
        Span<byte> decoded = stackalloc byte[HashLength + 1];
        if (!Convert.TryFromBase64Chars(hashText, decoded, out var hashLength) || hashLength != HashLength)
        {
            return false;
        }

        decoded[..HashLength].CopyTo(hash);
        return true;
    }
}
