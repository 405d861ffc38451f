using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

public sealed class MqttWireTests
{
    [Theory]
    [InlineData(0, new byte[] { 0x00 })]
    [InlineData(127, new byte[] { 0x7F })]
    [InlineData(128, new byte[] { 0x80, 0x01 })]
    [InlineData(16_383, new byte[] { 0xFF, 0x7F })]
    [InlineData(268_435_455, new byte[] { 0xFF, 0xFF, 0xFF, 0x7F })]
    public void VariableByteIntegersMatchTheSpecificationExamples(int value, byte[] expected)
    {
        var buffer = new byte[4];
        var length = MqttWire.WriteVarInt(buffer, value);

        Assert.Equal(expected, buffer[..length]);
        Assert.Equal(expected.Length, MqttWire.VarIntSize(value));
        Assert.Equal(length, MqttWire.ReadVarInt(buffer, out var read));
        Assert.Equal(value, read);
    }

    [Fact]
    public void ConnectWithASessionExpiryTurnsCleanStartOffAndCarriesTheProperty()
    {
        var packet = MqttWire.Connect(MqttWire.Version5, "c1", cleanStart: false, sessionExpiry: 300, keepAlive: 60, userName: null, password: null);

        byte[] expected =
        [
            0x10, 20, 0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 5, 0x00, 0, 60,
            5, 0x11, 0, 0, 0x01, 0x2C,
            0, 2, (byte)'c', (byte)'1',
        ];
        Assert.Equal(expected, packet);
    }

    [Fact]
    public void Connect311WithCredentialsHasNoProperties()
    {
        var packet = MqttWire.Connect(MqttWire.Version311, "c", cleanStart: true, sessionExpiry: 0, keepAlive: 0, userName: "u", password: "p");

        Assert.Equal(4, packet[8]);
        Assert.Equal(0x02 | 0x80 | 0x40, packet[9]);
        Assert.Equal([0, 1, (byte)'c', 0, 1, (byte)'u', 0, 1, (byte)'p'], packet[12..]);
    }

    [Theory]
    [InlineData(MqttWire.Version5, 0)]
    [InlineData(MqttWire.Version5, 1)]
    [InlineData(MqttWire.Version5, 2)]
    [InlineData(MqttWire.Version311, 1)]
    public void PublishRoundTripsThroughTheReader(byte version, int qos)
    {
        var topic = MqttWire.EncodeString("bench/1");
        var payloadSize = 300;
        var packet = new byte[MqttWire.PublishLength(version, topic.Length, qos, payloadSize)];
        var header = MqttWire.WritePublishHeader(packet, version, topic, qos, 77, payloadSize);
        new PayloadHeader(3, 9, 11, 12).WriteTo(packet.AsSpan(header));

        Assert.True(MqttWire.TryReadFixedHeader(packet, out var first, out var remaining, out var headerLength));
        Assert.Equal(qos, (first >> 1) & 3);
        Assert.Equal(packet.Length, headerLength + remaining);
        var body = packet.AsSpan(headerLength, remaining);
        var payloadStart = MqttWire.ReadPublish(body, version, qos, out var packetId);
        Assert.Equal(qos > 0 ? 77 : 0, packetId);
        Assert.Equal(payloadSize, body.Length - payloadStart);
        Assert.True(PayloadHeader.TryRead(body[payloadStart..], out var read));
        Assert.Equal(new PayloadHeader(3, 9, 11, 12), read);
    }

    [Fact]
    public void AFixedHeaderSplitAcrossReadsIsIncomplete()
    {
        Assert.False(MqttWire.TryReadFixedHeader([0x30], out _, out _, out _));
        Assert.False(MqttWire.TryReadFixedHeader([0x30, 0x80], out _, out _, out _));
        Assert.Throws<InvalidDataException>(() => MqttWire.TryReadFixedHeader([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], out _, out _, out _));
    }

    [Theory]
    [InlineData(MqttWire.Version5, new byte[] { 0xA2, 6, 0, 2, 0, 0, 1, (byte)'t' })]
    [InlineData(MqttWire.Version311, new byte[] { 0xA2, 5, 0, 2, 0, 1, (byte)'t' })]
    public void UnsubscribeCarriesItsReservedFlagsAndTheFilter(byte version, byte[] expected)
    {
        Assert.Equal(expected, MqttWire.Unsubscribe(version, 2, "t"));
    }

    [Fact]
    public void ARetainedPublishSetsTheRetainFlag()
    {
        var topic = MqttWire.EncodeString("t");
        var packet = new byte[MqttWire.PublishLength(MqttWire.Version5, topic.Length, 1, 0)];
        MqttWire.WritePublishHeader(packet, MqttWire.Version5, topic, 1, 5, 0, retain: true);
        Assert.Equal(0x33, packet[0]);
    }

    [Fact]
    public void PubRelCarriesItsReservedFlags()
    {
        var buffer = new byte[4];
        MqttWire.WriteAck(buffer, PacketType.PubRel, 0x0102);
        Assert.Equal([0x62, 2, 1, 2], buffer);
    }

    [Fact]
    public void ConnAckPropertiesYieldTheReceiveMaximum()
    {
        // Session present 0, success, properties: Topic Alias Maximum 10, Receive Maximum 100, Assigned Client Identifier "ab".
        byte[] body = [0, 0, 11, 0x22, 0, 10, 0x21, 0, 100, 0x12, 0, 2, (byte)'a', (byte)'b'];
        body[2] = (byte)(body.Length - 3);

        MqttWire.ReadConnAck(body, MqttWire.Version5, out var reason, out var receiveMaximum);

        Assert.Equal(0, reason);
        Assert.Equal(100, receiveMaximum);
    }

    [Fact]
    public void SubscribeWithSeveralFiltersCarriesEachWithItsOptionsByte()
    {
        var packet = MqttWire.Subscribe(MqttWire.Version5, 1, ["a/b", "c"], qos: 1);

        byte[] expected =
        [
            0x82, 13, 0, 1, 0,
            0, 3, (byte)'a', (byte)'/', (byte)'b', 1,
            0, 1, (byte)'c', 1,
        ];
        Assert.Equal(expected, packet);
        Assert.Equal(MqttWire.Subscribe(MqttWire.Version311, 7, "a/b", 1), MqttWire.Subscribe(MqttWire.Version311, 7, ["a/b"], 1));
    }

    [Theory]
    [InlineData(new byte[] { 1, 1, 0 }, 3, 1)]
    [InlineData(new byte[] { 1, 0x97, 0 }, 3, 0x97)]
    [InlineData(new byte[] { 1, 1 }, 3, 0x80)]
    [InlineData(new byte[0], 1, 0x80)]
    public void TheSubAckOfSeveralFiltersAnswersWithItsWorstCode(byte[] codes, int filters, int expected) =>
        Assert.Equal((byte)expected, BenchClient.HighestReasonCode(codes, filters));
}
