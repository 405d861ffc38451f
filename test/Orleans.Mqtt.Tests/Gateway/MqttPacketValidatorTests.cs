using System.Buffers;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using Orleans.Mqtt.Fuzzing;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Protocol;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

public sealed class MqttPacketValidatorTests
{
    private const MqttProtocolVersion V3 = MqttProtocolVersion.V311;
    private const MqttProtocolVersion V5 = MqttProtocolVersion.V500;

    // The fuzz run: valid packets generated with MQTTnet's encoder, each mutated this many times.
    private const int FuzzSeed = 20_261_206;
    private const int FuzzPackets = 5_000;
    private const int MutationsPerPacket = 4;

    public static TheoryData<string, MqttProtocolVersion, string> FuzzFindings => new()
    {
        // Invalid UTF-8 in the client id (the session takeover of the fuzz run) and in a topic name.
        { "101100044d51545405020000000004646576ff", MqttProtocolVersion.Unknown, nameof(CloseReason.InvalidUtf8) },
        { "101100044d51545405020000000004646576fe", MqttProtocolVersion.Unknown, nameof(CloseReason.InvalidUtf8) },
        { "101000044d5154540402000000046465" + "76ff", MqttProtocolVersion.Unknown, nameof(CloseReason.InvalidUtf8) },
        { "300700" + "05667a2fc328", V3, nameof(CloseReason.InvalidUtf8) },
        { "30080005667a2fc32800", V5, nameof(CloseReason.InvalidUtf8) },

        // Packet identifier 0.
        { "3206000161000078", V3, nameof(CloseReason.PacketIdentifierZero) },
        { "340700016100000078", V5, nameof(CloseReason.PacketIdentifierZero) },
        { "8206000000016101", V3, nameof(CloseReason.PacketIdentifierZero) },
        { "a20500000001" + "61", V3, nameof(CloseReason.PacketIdentifierZero) },
        { "40020000", V3, nameof(CloseReason.PacketIdentifierZero) },
        { "50020000", V3, nameof(CloseReason.PacketIdentifierZero) },
        { "62020000", V3, nameof(CloseReason.PacketIdentifierZero) },
        { "70020000", V5, nameof(CloseReason.PacketIdentifierZero) },

        // Malformed CONNECT: will QoS 3, the reserved flag.
        { "101a00044d515454041e003c0005667a742d340004667a2f77000178", MqttProtocolVersion.Unknown, nameof(CloseReason.MalformedPacket) },
        { "101200044d5154540503003c000005667a742d35", MqttProtocolVersion.Unknown, nameof(CloseReason.MalformedPacket) },

        // Subscription options: reserved bits, Retain Handling 3.
        { "8207000300000161c1", V5, nameof(CloseReason.MalformedPacket) },
        { "82070003000001613" + "1", V5, nameof(CloseReason.ProtocolError) },
        { "820600030001" + "6104", V3, nameof(CloseReason.MalformedPacket) },

        // UNSUBSCRIBE without filters, wrong fixed-header flags, DUP on QoS 0.
        { "a2020004", V3, nameof(CloseReason.ProtocolError) },
        { "a203000400", V5, nameof(CloseReason.ProtocolError) },
        { "c100", V3, nameof(CloseReason.MalformedPacket) },
        { "42020001", V3, nameof(CloseReason.MalformedPacket) },
        { "60020001", V3, nameof(CloseReason.MalformedPacket) },
        { "8006000100016101", V3, nameof(CloseReason.MalformedPacket) },
        { "380400016178", V3, nameof(CloseReason.MalformedPacket) },

        // A PUBLISH from a client with a Subscription Identifier.
        { "3006000161020b01", V5, nameof(CloseReason.ProtocolError) },
    };

    public static TheoryData<string, string> InvalidConnectProperties => new()
    {
        { "210000", nameof(CloseReason.ProtocolError) },          // Receive Maximum 0
        { "2700000000", nameof(CloseReason.ProtocolError) },    // Maximum Packet Size 0
        { "1702", nameof(CloseReason.ProtocolError) },          // Request Problem Information 2
        { "1902", nameof(CloseReason.ProtocolError) },          // Request Response Information 2
        { "1100000001" + "1100000002", nameof(CloseReason.ProtocolError) }, // Session Expiry Interval twice
        { "1601" + "00", nameof(CloseReason.MalformedPacket) }, // Authentication Data truncated
        { "16000178", nameof(CloseReason.ProtocolError) },      // Authentication Data without Authentication Method
        { "2301", nameof(CloseReason.MalformedPacket) },        // Topic Alias: not a CONNECT property
        { "0b01", nameof(CloseReason.MalformedPacket) },        // Subscription Identifier: not a CONNECT property
        { "7f00", nameof(CloseReason.MalformedPacket) },        // no such property
        { "26000161" + "0001ff", nameof(CloseReason.InvalidUtf8) }, // user property value not UTF-8
        { "1500026100", nameof(CloseReason.InvalidUtf8) },      // Authentication Method with U+0000
        { "150003eda080", nameof(CloseReason.InvalidUtf8) },    // a UTF-8 encoded surrogate
        { "150002c0af", nameof(CloseReason.InvalidUtf8) },      // an overlong encoding
    };

    [Theory]
    [MemberData(nameof(FuzzFindings))]
    public void Fuzz_findings_are_refused(string hex, MqttProtocolVersion version, string kind)
    {
        var refusal = Refusal(Convert.FromHexString(hex), version);
        Assert.Equal(kind, refusal.Reason.ToString());
    }

    [Theory]
    [MemberData(nameof(InvalidConnectProperties))]
    public void Invalid_connect_properties_are_refused(string propertiesHex, string kind)
    {
        var properties = Convert.FromHexString(propertiesHex);
        byte[] body = [0, 4, .. "MQTT"u8, 5, 0x02, 0, 60, (byte)properties.Length, .. properties, 0, 1, (byte)'c'];
        Assert.False(MqttPacketValidator.Validate(0x10, body, MqttProtocolVersion.Unknown, out var refusal));
        Assert.Equal(kind, refusal.Reason.ToString());
        Assert.Equal(V5, refusal.ConnectVersion);
    }

    [Fact]
    public void Server_only_packets_and_a_second_connect_are_protocol_errors()
    {
        foreach (var hex in new[] { "20020000", "9003000100", "b0020001", "d000" })
        {
            Assert.Equal(CloseReason.ProtocolError, Refusal(Convert.FromHexString(hex), V5).Reason);
        }

        var connect = MqttFuzzPackets.Encode(new MqttConnectPacket { ClientId = "c" }, V3);
        Assert.Equal(CloseReason.ProtocolError, Refusal(connect, V3).Reason);
        Assert.Equal(CloseReason.ProtocolError, Refusal(Convert.FromHexString("c000"), MqttProtocolVersion.Unknown).Reason);
    }

    [Fact]
    public void Auth_is_refused_in_mqtt_311_and_no_local_on_a_shared_subscription_in_mqtt_5()
    {
        Assert.Equal(CloseReason.MalformedPacket, Refusal(Convert.FromHexString("f000"), V3).Reason);
        var shared = MqttFuzzPackets.Encode(new MqttSubscribePacket { PacketIdentifier = 1, TopicFilters = [new MqttTopicFilter { Topic = "$share/g/a", NoLocal = true }] }, V5);
        Assert.Equal(CloseReason.ProtocolError, Refusal(shared, V5).Reason);
    }

    [Fact]
    public void Unsupported_protocol_levels_are_refused_as_such()
    {
        Assert.Equal(CloseReason.UnsupportedProtocolVersion, Refusal(Convert.FromHexString("100d00044d5154540602003c000163"), MqttProtocolVersion.Unknown).Reason);
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public void Valid_packets_of_every_type_are_accepted(MqttProtocolVersion version)
    {
        var random = new Random(version == V5 ? 5 : 4);
        for (var type = 0; type < MqttFuzzPackets.PacketKinds; type++)
        {
            for (var i = 0; i < 50; i++)
            {
                var packet = MqttFuzzPackets.Generate(random, version, type);
                var bytes = MqttFuzzPackets.Encode(packet, version);
                var (header, body) = Split(bytes);
                var accepted = MqttPacketValidator.Validate(header, body, packet is MqttConnectPacket ? MqttProtocolVersion.Unknown : version, out var refusal);
                Assert.True(accepted, $"{packet.GetType().Name} {Convert.ToHexString(bytes)}: {refusal.Detail}");
            }
        }
    }

    [Fact]
    public void Strings_are_checked_for_well_formed_utf8_without_nul()
    {
        Assert.True(MqttPacketValidator.IsWellFormed("a/é/€/𝄞/\uFFFD"u8));
        Assert.False(MqttPacketValidator.IsWellFormed([0x61, 0x00]));
        Assert.False(MqttPacketValidator.IsWellFormed([0xED, 0xBF, 0xBF]));     // U+DFFF
        Assert.False(MqttPacketValidator.IsWellFormed([0xF4, 0x90, 0x80, 0x80])); // above U+10FFFF
        Assert.False(MqttPacketValidator.IsWellFormed([0xE2, 0x82]));             // truncated
    }

    /// <summary>
    /// Structure-aware fuzzing: valid packets of every type and both versions from MQTTnet's encoder are accepted;
    /// mutated ones never make the validator throw, and whatever MQTTnet's decoder makes of a mutated packet that
    /// the specification forbids (packet id 0, QoS 3, a string that is not well-formed UTF-8, ...) was refused.
    /// </summary>
    [Fact]
    public void Fuzzed_packets_that_decode_into_something_forbidden_are_refused()
    {
        var random = new Random(FuzzSeed);
        var cases = 0;
        var refused = 0;
        var decodedForbidden = 0;
        for (var i = 0; i < FuzzPackets; i++)
        {
            var version = random.Next(2) == 0 ? V3 : V5;
            var packet = MqttFuzzPackets.Generate(random, version, random.Next(MqttFuzzPackets.PacketKinds));
            var bytes = MqttFuzzPackets.Encode(packet, version);
            var (header, body) = Split(bytes);
            var connectionVersion = packet is MqttConnectPacket ? MqttProtocolVersion.Unknown : version;
            Assert.True(MqttPacketValidator.Validate(header, body, connectionVersion, out var refusal), $"{Convert.ToHexString(bytes)}: {refusal.Detail}");
            cases++;

            for (var m = 0; m < MutationsPerPacket; m++)
            {
                var (mutatedHeader, mutatedBody) = MqttFuzzPackets.Mutate(random, header, body);
                cases++;
                var accepted = MqttPacketValidator.Validate(mutatedHeader, mutatedBody, connectionVersion, out _);
                if (!accepted)
                {
                    refused++;
                    continue;
                }

                var forbidden = MqttFuzzPackets.ForbiddenAfterDecoding(mutatedHeader, mutatedBody, version);
                if (forbidden is not null)
                {
                    decodedForbidden++;
                    Assert.Fail($"accepted {mutatedHeader:X2} {Convert.ToHexString(mutatedBody)} ({version}), which decodes into {forbidden}");
                }
            }
        }

        Assert.Equal(FuzzPackets * (1 + MutationsPerPacket), cases);
        Assert.Equal(0, decodedForbidden);

        // The mutations reach the checks: a good share of them is refused.
        Assert.InRange(refused, cases / 10, cases);
    }

    private static MqttPacketRefusal Refusal(byte[] packet, MqttProtocolVersion version)
    {
        var (header, body) = Split(packet);
        Assert.False(MqttPacketValidator.Validate(header, body, version, out var refusal), "accepted");
        Assert.False(string.IsNullOrEmpty(refusal.Detail));
        return refusal;
    }

    private static (byte Header, byte[] Body) Split(byte[] packet)
    {
        var status = MqttFrame.TryRead(new ReadOnlySequence<byte>(packet), int.MaxValue, out var header, out var headerLength, out var totalLength);
        Assert.Equal(FrameStatus.Complete, status);
        Assert.Equal(packet.Length, totalLength);
        return (header, packet[headerLength..]);
    }
}
