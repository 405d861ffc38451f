using MQTTnet.Formatter;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// MQTTnet packet formatters shared by every connection: one per protocol version and thread.
/// </summary>
/// <remarks>
/// A formatter holds buffers (about 1.6 KB for MQTT 5: its properties writer and our header writer), so one per
/// connection cost that much on every idle connection. Encoding and decoding are synchronous, and every caller
/// finishes with the formatter (Encode, write, Cleanup) before it awaits, so a thread's formatter is never used by
/// two connections at once.
/// </remarks>
internal static class PacketFormatters
{
    [ThreadStatic]
    private static MqttPacketFormatterAdapter? t_v310;

    [ThreadStatic]
    private static MqttPacketFormatterAdapter? t_v311;

    [ThreadStatic]
    private static MqttPacketFormatterAdapter? t_v500;

    /// <summary>This thread's formatter for <paramref name="version"/>.</summary>
    /// <exception cref="InvalidOperationException">The version is not known yet (no CONNECT decoded).</exception>
    public static MqttPacketFormatterAdapter For(MqttProtocolVersion version) => version switch
    {
        MqttProtocolVersion.V500 => t_v500 ??= Create(version),
        MqttProtocolVersion.V311 => t_v311 ??= Create(version),
        MqttProtocolVersion.V310 => t_v310 ??= Create(version),
        _ => throw new InvalidOperationException("The MQTT protocol version is not known before CONNECT."),
    };

    /// <summary>The protocol version a CONNECT's protocol name and level select, or Unknown.</summary>
    public static MqttProtocolVersion VersionOf(string name, int level) => (name, level) switch
    {
        ("MQTT", 5) => MqttProtocolVersion.V500,
        ("MQTT", 4) => MqttProtocolVersion.V311,
        ("MQIsdp", 3) => MqttProtocolVersion.V310,
        _ => MqttProtocolVersion.Unknown,
    };

    // Headers and properties only (payloads are not copied into it); buffers above 4 KB are let go after each use.
    private static MqttPacketFormatterAdapter Create(MqttProtocolVersion version) => new(version, new MqttBufferWriter(256, 4096));
}
