using System.Net;
using System.Net.Sockets;
using MQTTnet.Formatter;
using Orleans.Mqtt.Fuzzing;
using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

public sealed class FuzzScenarioTests
{
    [Fact]
    public void TheSameSeedGivesTheSameMutatedPacketsAndAnotherSeedOthers()
    {
        Assert.Equal(Packets(seed: 7), Packets(seed: 7));
        Assert.NotEqual(Packets(seed: 7), Packets(seed: 8));
    }

    [Fact]
    public void FrameAndSplitAreInverseForBodiesNeedingOneToThreeLengthBytes()
    {
        foreach (var size in new[] { 0, 127, 128, 16_383, 16_384 })
        {
            var body = new byte[size];
            Random.Shared.NextBytes(body);
            var packet = MqttFuzzPackets.Frame(0x32, body);
            var (header, split) = MqttFuzzPackets.Split(packet);
            Assert.Equal(0x32, header);
            Assert.Equal(body, split);
        }
    }

    [Theory]
    [InlineData("3206000161000078", "packet id 0")]            // PUBLISH QoS 1 with packet id 0
    [InlineData("30070005667a2fc328", "a string decoded with U+FFFD: 'fz/\uFFFD('")] // topic with invalid UTF-8 (C3 28)
    [InlineData("a2020004", "UNSUBSCRIBE without filters")]
    public void TheOracleNamesWhatIsForbiddenInTheDecodedPacket(string hex, string forbidden)
    {
        var (header, body) = MqttFuzzPackets.Split(Convert.FromHexString(hex));
        Assert.Equal(forbidden, MqttFuzzPackets.ForbiddenAfterDecoding(header, body, MqttProtocolVersion.V311));
    }

    [Fact]
    public void TheOracleFindsNothingInValidPackets()
    {
        var random = new Random(3);
        for (var kind = 0; kind < MqttFuzzPackets.PacketKinds; kind++)
        {
            var (header, body) = MqttFuzzPackets.Split(MqttFuzzPackets.Encode(MqttFuzzPackets.Generate(random, MqttProtocolVersion.V500, kind), MqttProtocolVersion.V500));
            Assert.Null(MqttFuzzPackets.ForbiddenAfterDecoding(header, body, MqttProtocolVersion.V500));
        }
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V500, null, (byte)0x81, "DISCONNECT 0x81")]
    [InlineData(MqttProtocolVersion.V500, (byte)0x84, null, "CONNACK 0x84")]
    [InlineData(MqttProtocolVersion.V311, (byte)0x01, null, "CONNACK 0x01")]
    [InlineData(MqttProtocolVersion.V500, (byte)0x00, null, "MQTT 5 closed without DISCONNECT")]
    [InlineData(MqttProtocolVersion.V311, (byte)0x00, null, "MQTT 3.1.1 closed")]
    public void ClosesAreCountedByTheReasonTheBrokerSent(MqttProtocolVersion version, byte? connAck, byte? disconnect, string label)
    {
        Assert.Equal(label, FuzzScenario.CloseLabel(version, connAck, disconnect));
    }

    [Fact]
    public async Task AFuzzedPingReqIsAnsweredByTheSecondPingRespAndACloseIsNoAnswer()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var broker = (IPEndPoint)listener.LocalEndpoint;
        var server = Task.Run(async () =>
        {
            using var accepted = await listener.AcceptSocketAsync();
            var received = new byte[4];
            // A fuzzed PINGREQ and the tool's own: the two PINGRESPs come back in separate writes.
            for (var got = 0; got < received.Length;)
            {
                var read = await accepted.ReceiveAsync(received.AsMemory(got));
                Assert.True(read > 0);
                got += read;
            }

            await accepted.SendAsync(new byte[] { 0xD0, 0x00 });
            await accepted.SendAsync(new byte[] { 0xD0, 0x00 });
            // The next packet is refused with an MQTT 5 DISCONNECT 0x81 and a close.
            Assert.True(await accepted.ReceiveAsync(received) > 0);
            await accepted.SendAsync(new byte[] { 0xE0, 0x01, 0x81 });
            accepted.Shutdown(SocketShutdown.Send);
        });

        var connection = await FuzzConnection.OpenAsync(broker, null, TimeSpan.FromSeconds(5), CancellationToken.None);
        await using (connection)
        {
            Assert.Equal(FuzzAnswer.Answered, await connection.SendWithPingAsync([0xC0, 0x00], TimeSpan.FromSeconds(10), CancellationToken.None));
            Assert.Equal(FuzzAnswer.Closed, await connection.SendWithPingAsync([0x40, 0x02, 0x00, 0x00], TimeSpan.FromSeconds(10), CancellationToken.None));
            Assert.Equal((byte)0x81, connection.DisconnectReason);
        }

        await server;
    }

    private static List<string> Packets(int seed)
    {
        var random = new Random(seed);
        var packets = new List<string>();
        for (var i = 0; i < 200; i++)
        {
            var version = random.Next(2) == 0 ? MqttProtocolVersion.V311 : MqttProtocolVersion.V500;
            var (header, body) = MqttFuzzPackets.Split(MqttFuzzPackets.Encode(MqttFuzzPackets.Generate(random, version, random.Next(MqttFuzzPackets.PacketKinds)), version));
            var (mutatedHeader, mutatedBody) = MqttFuzzPackets.Mutate(random, header, body);
            packets.Add(Convert.ToHexString(MqttFuzzPackets.Frame(mutatedHeader, mutatedBody)));
        }

        return packets;
    }
}
