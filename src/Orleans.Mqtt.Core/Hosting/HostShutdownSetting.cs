using System.Globalization;

namespace Orleans.Mqtt.Hosting;

/// <summary>
/// <c>Host:ShutdownTimeout</c>: how long a host may take to stop after SIGTERM (a silo hands its sessions over, a
/// gateway drains its clients) before .NET cuts the stop short. .NET's own default is 30 s; a deployment that gives a pod
/// a longer grace period sets this a little below it.
/// </summary>
public static class HostShutdownSetting
{
    /// <summary>The configuration key.</summary>
    public const string Key = "Host:ShutdownTimeout";

    /// <summary>The configured timeout, or <paramref name="fallback"/> when unset; a startup error naming the key for a bad value.</summary>
    public static TimeSpan Parse(string? text, TimeSpan fallback)
    {
        if (string.IsNullOrEmpty(text))
        {
            return fallback;
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var timeout) && timeout > TimeSpan.Zero
            ? timeout
            : throw new InvalidOperationException($"{Key} must be a positive time span such as 00:01:50 (was '{text}').");
    }
}
