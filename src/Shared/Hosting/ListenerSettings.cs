using System.Net;

namespace Orleans.Mqtt.Hosting;

/// <summary>The checks of listener settings that every host makes, with one wording for each setting it names.</summary>
internal static class ListenerSettings
{
    /// <summary>The setting of every host's HTTP endpoint (health and metrics).</summary>
    public const string HttpPort = "Http:Port";

    /// <summary>The address every listener of a host binds to.</summary>
    public const string BindAddress = "Mqtt:BindAddress";

    /// <summary>Why <paramref name="port"/> cannot be the value of <paramref name="setting"/>, or null when it can (0 turns a listener off).</summary>
    public static string? PortError(string setting, int port) =>
        port is < 0 or > 65535 ? $"{setting} must be between 0 and 65535 (was {port})." : null;

    /// <summary>Why <paramref name="text"/> cannot be the value of <see cref="BindAddress"/>, or null when it can.</summary>
    public static string? BindAddressError(string? text) =>
        IPAddress.TryParse(text, out _) ? null : $"{BindAddress} must be an IP address (was '{text}').";
}
