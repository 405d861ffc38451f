namespace Orleans.Mqtt.Gateway;

/// <summary>The Variable Byte Integer of MQTT (MQTT 5 section 1.5.5; the remaining length of 3.1.1 section 2.2.3).</summary>
internal static class VariableByteInteger
{
    /// <summary>
    /// Reads one at <paramref name="position"/> and moves past it. False when the span ends first, when it takes more
    /// than four bytes, or when it is not in its shortest form (a trailing 0x00 after a continuation byte).
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> span, ref int position, out int value)
    {
        value = 0;
        for (var i = 0; i < 4; i++)
        {
            if (position >= span.Length)
            {
                return false;
            }

            var b = span[position++];
            value |= (b & 0x7F) << (7 * i);
            if ((b & 0x80) == 0)
            {
                return i == 0 || b != 0;
            }
        }

        return false;
    }
}
