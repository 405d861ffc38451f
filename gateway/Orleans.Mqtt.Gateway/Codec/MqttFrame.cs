using System.Buffers;

namespace Orleans.Mqtt.Gateway;

/// <summary>Reads the fixed header of an MQTT packet, so oversize packets are refused before they are buffered.</summary>
internal static class MqttFrame
{
    /// <summary>The first byte of every CONNECT (packet type 1, no flags) [MQTT-3.1.0-1].</summary>
    public const byte ConnectFixedHeader = 0x10;

    /// <summary>
    /// Looks for a complete packet at the start of <paramref name="buffer"/>. <paramref name="totalLength"/> is the
    /// whole packet's size (fixed header included) once the remaining length is known.
    /// </summary>
    public static FrameStatus TryRead(in ReadOnlySequence<byte> buffer, int maxPacketSize, out byte fixedHeader, out int headerLength, out int totalLength)
    {
        fixedHeader = 0;
        headerLength = 0;
        totalLength = 0;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryRead(out fixedHeader))
        {
            return FrameStatus.Incomplete;
        }

        var remaining = 0;
        var multiplier = 1;
        for (var i = 0; ; i++)
        {
            if (!reader.TryRead(out var b))
            {
                return FrameStatus.Incomplete;
            }

            remaining += (b & 0x7F) * multiplier;
            if ((b & 0x80) == 0)
            {
                headerLength = i + 2;
                break;
            }

            if (i == 3)
            {
                // The remaining length takes at most four bytes [MQTT-2.2.3].
                return FrameStatus.Malformed;
            }

            multiplier *= 128;
        }

        totalLength = headerLength + remaining;
        if (totalLength > maxPacketSize)
        {
            return FrameStatus.TooLarge;
        }

        return buffer.Length >= totalLength ? FrameStatus.Complete : FrameStatus.Incomplete;
    }

    /// <summary>Reads the protocol name and level of a CONNECT body, or returns false when it is too short.</summary>
    public static bool TryReadProtocol(ReadOnlySpan<byte> body, out string name, out byte level)
    {
        name = string.Empty;
        level = 0;
        if (body.Length < 3)
        {
            return false;
        }

        var length = (body[0] << 8) | body[1];
        if (body.Length < 2 + length + 1)
        {
            return false;
        }

        name = System.Text.Encoding.UTF8.GetString(body.Slice(2, length));
        level = (byte)(body[2 + length] & 0x7F);
        return true;
    }

    /// <summary>
    /// For a 3.1 / 3.1.1 CONNECT body: whether the client id is empty while clean session is off (the decoder
    /// refuses such a packet, but the spec wants CONNACK 0x02 for it).
    /// </summary>
    public static bool IsEmptyClientIdWithoutCleanSession(ReadOnlySpan<byte> body)
    {
        if (body.Length < 2)
        {
            return false;
        }

        var flagsAt = 2 + ((body[0] << 8) | body[1]) + 1;
        var clientIdAt = flagsAt + 3;
        if (body.Length < clientIdAt + 2)
        {
            return false;
        }

        var cleanSession = (body[flagsAt] & 0x02) != 0;
        var clientIdLength = (body[clientIdAt] << 8) | body[clientIdAt + 1];
        return !cleanSession && clientIdLength == 0;
    }
}
