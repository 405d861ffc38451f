using Xunit;
using System.Buffers;
using Orleans.Mqtt.Gateway;

namespace Orleans.Mqtt.Tests.Gateway;

public sealed class MqttFrameTests
{
    private static FrameStatus Read(byte[] bytes, int max, out int header, out int total) =>
        MqttFrame.TryRead(new ReadOnlySequence<byte>(bytes), max, out _, out header, out total);

    [Theory]
    [InlineData(new byte[] { 0xC0, 0x00 }, 2, 2)]
    [InlineData(new byte[] { 0x30, 0x02, 0x00, 0x00 }, 2, 4)]
    [InlineData(new byte[] { 0x30, 0x80, 0x01 }, 3, 131)]
    public void Reads_the_fixed_header_and_total_length(byte[] bytes, int expectedHeader, int expectedTotal)
    {
        var padded = bytes.Concat(new byte[Math.Max(0, expectedTotal - bytes.Length)]).ToArray();
        Assert.Equal(FrameStatus.Complete, Read(padded, 1024, out var header, out var total));
        Assert.Equal(expectedHeader, header);
        Assert.Equal(expectedTotal, total);
    }

    [Fact]
    public void Waits_for_the_rest_of_a_packet()
    {
        Assert.Equal(FrameStatus.Incomplete, Read([0x30], 1024, out _, out _));
        Assert.Equal(FrameStatus.Incomplete, Read([0x30, 0x80], 1024, out _, out _));
        Assert.Equal(FrameStatus.Incomplete, Read([0x30, 0x05, 0x00], 1024, out _, out _));
    }

    [Fact]
    public void A_remaining_length_of_five_bytes_is_malformed()
    {
        Assert.Equal(FrameStatus.Malformed, Read([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], int.MaxValue, out _, out _));
    }

    [Fact]
    public void Oversize_is_known_from_the_header_alone()
    {
        // 2 MiB announced, only the header present.
        Assert.Equal(FrameStatus.TooLarge, Read([0x30, 0x80, 0x80, 0x80, 0x01], 1024 * 1024, out _, out var total));
        Assert.Equal(2 * 1024 * 1024 + 5, total);
    }

    [Fact]
    public void Reads_the_protocol_name_and_level_of_a_connect()
    {
        Assert.True(MqttFrame.TryReadProtocol([0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 5, 0], out var name, out var level));
        Assert.Equal(("MQTT", (byte)5), (name, level));
        Assert.False(MqttFrame.TryReadProtocol([0, 4, (byte)'M'], out _, out _));
    }
}
