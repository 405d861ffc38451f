using System.Buffers;
using System.Text;
using MQTTnet.Adapter;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;
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

    // Characters of generated strings: ASCII, two-, three- and four-byte UTF-8, never U+FFFD or U+0000.
    private static readonly string[] Alphabet = ["a", "b", "z", "0", "/", "-", "_", " ", "é", "ß", "€", "中", "𝄞", "😀"];

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

        var connect = Encode(new MqttConnectPacket { ClientId = "c" }, V3);
        Assert.Equal(CloseReason.ProtocolError, Refusal(connect, V3).Reason);
        Assert.Equal(CloseReason.ProtocolError, Refusal(Convert.FromHexString("c000"), MqttProtocolVersion.Unknown).Reason);
    }

    [Fact]
    public void Auth_is_refused_in_mqtt_311_and_no_local_on_a_shared_subscription_in_mqtt_5()
    {
        Assert.Equal(CloseReason.MalformedPacket, Refusal(Convert.FromHexString("f000"), V3).Reason);
        var shared = Encode(new MqttSubscribePacket { PacketIdentifier = 1, TopicFilters = [new MqttTopicFilter { Topic = "$share/g/a", NoLocal = true }] }, V5);
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
        for (var type = 0; type < PacketKinds; type++)
        {
            for (var i = 0; i < 50; i++)
            {
                var packet = Generate(random, version, type);
                var bytes = Encode(packet, version);
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
            var packet = Generate(random, version, random.Next(PacketKinds));
            var bytes = Encode(packet, version);
            var (header, body) = Split(bytes);
            var connectionVersion = packet is MqttConnectPacket ? MqttProtocolVersion.Unknown : version;
            Assert.True(MqttPacketValidator.Validate(header, body, connectionVersion, out var refusal), $"{Convert.ToHexString(bytes)}: {refusal.Detail}");
            cases++;

            for (var m = 0; m < MutationsPerPacket; m++)
            {
                var (mutatedHeader, mutatedBody) = Mutate(random, header, body);
                cases++;
                var accepted = MqttPacketValidator.Validate(mutatedHeader, mutatedBody, connectionVersion, out _);
                if (!accepted)
                {
                    refused++;
                    continue;
                }

                var forbidden = ForbiddenAfterDecoding(mutatedHeader, mutatedBody, version);
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

    private const int PacketKinds = 10;

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

    private static byte[] Encode(MqttPacket packet, MqttProtocolVersion version)
    {
        var formatter = new MqttPacketFormatterAdapter(version, new MqttBufferWriter(256, 65536));
        var encoded = formatter.Encode(packet);
        var bytes = new byte[encoded.Length];
        encoded.Packet.AsSpan().CopyTo(bytes);
        encoded.Payload.CopyTo(bytes.AsSpan(encoded.Packet.Count));
        formatter.Cleanup();
        return bytes;
    }

    private static MqttPacket Generate(Random random, MqttProtocolVersion version, int kind)
    {
        var v5 = version == V5;
        switch (kind)
        {
            case 0:
                var will = random.Next(2) == 0;
                var user = random.Next(2) == 0;
                var connect = new MqttConnectPacket
                {
                    ClientId = Text(random, 0, 23),
                    CleanSession = true,
                    KeepAlivePeriod = (ushort)random.Next(ushort.MaxValue),
                    Username = user ? Text(random, 0, 10) : null,
                    Password = user && random.Next(2) == 0 ? RandomBytes(random, 8) : null,
                    WillFlag = will,
                    WillTopic = will ? Topic(random) : null,
                    WillMessage = will ? RandomBytes(random, 20) : null,
                    WillQoS = will ? (MqttQualityOfServiceLevel)random.Next(3) : MqttQualityOfServiceLevel.AtMostOnce,
                    WillRetain = will && random.Next(2) == 0,
                };
                if (v5)
                {
                    connect.SessionExpiryInterval = (uint)random.Next();
                    connect.ReceiveMaximum = (ushort)random.Next(1, ushort.MaxValue);
                    connect.MaximumPacketSize = (uint)random.Next(1, int.MaxValue);
                    connect.TopicAliasMaximum = (ushort)random.Next(ushort.MaxValue);
                    connect.RequestProblemInformation = random.Next(2) == 0;
                    connect.RequestResponseInformation = random.Next(2) == 0;
                    connect.UserProperties = UserProperties(random);
                    if (random.Next(3) == 0)
                    {
                        connect.AuthenticationMethod = Text(random, 1, 8);
                        connect.AuthenticationData = RandomBytes(random, 8);
                    }

                    if (will)
                    {
                        connect.WillDelayInterval = (uint)random.Next();
                        connect.WillPayloadFormatIndicator = (MqttPayloadFormatIndicator)random.Next(2);
                        connect.WillMessageExpiryInterval = (uint)random.Next();
                        connect.WillContentType = random.Next(2) == 0 ? Text(random, 1, 10) : null;
                        connect.WillResponseTopic = random.Next(2) == 0 ? Topic(random) : null;
                        connect.WillCorrelationData = random.Next(2) == 0 ? RandomBytes(random, 8) : null;
                        connect.WillUserProperties = UserProperties(random);
                    }
                }

                return connect;

            case 1:
                var qos = (MqttQualityOfServiceLevel)random.Next(3);
                var publish = new MqttPublishPacket
                {
                    Topic = Topic(random),
                    QualityOfServiceLevel = qos,
                    PacketIdentifier = qos > 0 ? PacketId(random) : (ushort)0,
                    Retain = random.Next(2) == 0,
                    Dup = qos > 0 && random.Next(2) == 0,
                    Payload = new ReadOnlySequence<byte>(RandomBytes(random, 40)),
                };
                if (v5)
                {
                    publish.PayloadFormatIndicator = (MqttPayloadFormatIndicator)random.Next(2);
                    publish.MessageExpiryInterval = (uint)random.Next();
                    publish.TopicAlias = (ushort)random.Next(3);
                    publish.ContentType = random.Next(2) == 0 ? Text(random, 1, 10) : null;
                    publish.ResponseTopic = random.Next(2) == 0 ? Topic(random) : null;
                    publish.CorrelationData = random.Next(2) == 0 ? RandomBytes(random, 8) : null;
                    publish.UserProperties = UserProperties(random);
                }

                return publish;

            case 2:
                return new MqttPubAckPacket
                {
                    PacketIdentifier = PacketId(random),
                    ReasonCode = v5 && random.Next(2) == 0 ? MqttPubAckReasonCode.NoMatchingSubscribers : MqttPubAckReasonCode.Success,
                    ReasonString = v5 && random.Next(2) == 0 ? Text(random, 1, 10) : null,
                    UserProperties = v5 ? UserProperties(random) : null,
                };

            case 3:
                return new MqttPubRecPacket
                {
                    PacketIdentifier = PacketId(random),
                    ReasonCode = v5 && random.Next(2) == 0 ? MqttPubRecReasonCode.UnspecifiedError : MqttPubRecReasonCode.Success,
                    ReasonString = v5 && random.Next(2) == 0 ? Text(random, 1, 10) : null,
                    UserProperties = v5 ? UserProperties(random) : null,
                };

            case 4:
                return new MqttPubRelPacket
                {
                    PacketIdentifier = PacketId(random),
                    ReasonCode = v5 && random.Next(2) == 0 ? MqttPubRelReasonCode.PacketIdentifierNotFound : MqttPubRelReasonCode.Success,
                    ReasonString = v5 && random.Next(2) == 0 ? Text(random, 1, 10) : null,
                };

            case 5:
                return new MqttPubCompPacket
                {
                    PacketIdentifier = PacketId(random),
                    ReasonString = v5 && random.Next(2) == 0 ? Text(random, 1, 10) : null,
                    UserProperties = v5 ? UserProperties(random) : null,
                };

            case 6:
                var subscribe = new MqttSubscribePacket
                {
                    PacketIdentifier = PacketId(random),
                    SubscriptionIdentifier = v5 ? (uint)random.Next(0, 268_435_455) : 0,
                    UserProperties = v5 ? UserProperties(random) : null,
                };
                for (var n = random.Next(1, 4); n > 0; n--)
                {
                    subscribe.TopicFilters.Add(new MqttTopicFilter
                    {
                        Topic = random.Next(3) == 0 ? "a/+/#" : Topic(random),
                        QualityOfServiceLevel = (MqttQualityOfServiceLevel)random.Next(3),
                        NoLocal = v5 && random.Next(2) == 0,
                        RetainAsPublished = v5 && random.Next(2) == 0,
                        RetainHandling = v5 ? (MqttRetainHandling)random.Next(3) : MqttRetainHandling.SendAtSubscribe,
                    });
                }

                return subscribe;

            case 7:
                var unsubscribe = new MqttUnsubscribePacket { PacketIdentifier = PacketId(random), UserProperties = v5 ? UserProperties(random) : null };
                for (var n = random.Next(1, 4); n > 0; n--)
                {
                    unsubscribe.TopicFilters.Add(Topic(random));
                }

                return unsubscribe;

            case 8:
                return MqttPingReqPacket.Instance;

            default:
                if (v5 && random.Next(3) == 0)
                {
                    return new MqttAuthPacket
                    {
                        ReasonCode = MqttAuthenticateReasonCode.ContinueAuthentication,
                        AuthenticationMethod = Text(random, 1, 8),
                        AuthenticationData = RandomBytes(random, 8),
                        ReasonString = random.Next(2) == 0 ? Text(random, 1, 10) : null,
                        UserProperties = UserProperties(random),
                    };
                }

                return new MqttDisconnectPacket
                {
                    ReasonCode = v5 && random.Next(2) == 0 ? MqttDisconnectReasonCode.DisconnectWithWillMessage : MqttDisconnectReasonCode.NormalDisconnection,
                    SessionExpiryInterval = v5 ? (uint)random.Next(3) : 0,
                    ReasonString = v5 && random.Next(2) == 0 ? Text(random, 1, 10) : null,
                    UserProperties = v5 ? UserProperties(random) : null,
                };
        }
    }

    private static (byte Header, byte[] Body) Mutate(Random random, byte header, byte[] body)
    {
        var mutated = (byte[])body.Clone();
        switch (random.Next(8))
        {
            case 0:
                // Fixed-header flags (the type stays: the read loop refuses a first packet that is not CONNECT).
                return ((byte)((header & 0xF0) | random.Next(16)), mutated);
            case 1:
                return (header, mutated[..random.Next(mutated.Length + 1)]);
            case 2:
                return (header, [.. mutated, .. RandomBytes(random, 6, minimum: 1)]);
            case 3 when mutated.Length > 0:
                mutated[random.Next(mutated.Length)] ^= (byte)(1 << random.Next(8));
                return (header, mutated);
            case 4 when mutated.Length > 0:
                // A byte that breaks UTF-8 (or is U+0000) wherever it lands.
                mutated[random.Next(mutated.Length)] = (byte)(random.Next(5) switch { 0 => 0xFF, 1 => 0xC0, 2 => 0x80, 3 => 0xED, _ => 0x00 });
                return (header, mutated);
            case 5 when mutated.Length > 1:
                // A packet id, length or property value of 0 or 0xFFFF.
                var at = random.Next(mutated.Length - 1);
                mutated[at] = mutated[at + 1] = random.Next(2) == 0 ? (byte)0 : (byte)0xFF;
                return (header, mutated);
            case 6 when mutated.Length > 0:
                // A property identifier or value replaced by one from the property table's range.
                mutated[random.Next(mutated.Length)] = (byte)random.Next(0x2C);
                return (header, mutated);
            default:
                if (mutated.Length > 0)
                {
                    mutated[random.Next(mutated.Length)] = (byte)random.Next(256);
                }

                return (header, mutated);
        }
    }

    /// <summary>What the specification forbids in the packet MQTTnet decodes from these bytes, or null.</summary>
    private static string? ForbiddenAfterDecoding(byte header, byte[] body, MqttProtocolVersion version)
    {
        MqttPacket packet;
        try
        {
            var formatter = new MqttPacketFormatterAdapter(version, new MqttBufferWriter(256, 65536));
            packet = formatter.Decode(new ReceivedMqttPacket(header, new ArraySegment<byte>(body), body.Length + 2));
        }
        catch (Exception)
        {
            return null;
        }

        // Bytes EF BF BD are U+FFFD itself; only when they are absent does U+FFFD in a string mean a replaced sequence.
        var replacementBytes = body.AsSpan().IndexOf("\uFFFD"u8) >= 0;
        var strings = new List<string?>();
        string? forbidden = null;
        switch (packet)
        {
            case MqttConnectPacket connect:
                strings.AddRange([connect.ClientId, connect.Username, connect.WillTopic, connect.AuthenticationMethod, connect.WillContentType, connect.WillResponseTopic]);
                AddUserProperties(strings, connect.UserProperties);
                AddUserProperties(strings, connect.WillUserProperties);
                if ((int)connect.WillQoS > 2)
                {
                    forbidden = "will QoS 3";
                }

                break;
            case MqttPublishPacket publish:
                strings.AddRange([publish.Topic, publish.ContentType, publish.ResponseTopic]);
                AddUserProperties(strings, publish.UserProperties);
                if ((int)publish.QualityOfServiceLevel > 2)
                {
                    forbidden = "QoS 3";
                }
                else if (publish.QualityOfServiceLevel > 0 && publish.PacketIdentifier == 0)
                {
                    forbidden = "packet id 0";
                }
                else if (publish.QualityOfServiceLevel == 0 && publish.Dup)
                {
                    forbidden = "DUP on QoS 0";
                }
                else if (publish.SubscriptionIdentifiers is { Count: > 0 })
                {
                    forbidden = "a Subscription Identifier from a client";
                }

                break;
            case MqttPacketWithIdentifier { PacketIdentifier: 0 } withId:
                forbidden = $"packet id 0 in {withId.GetType().Name}";
                break;
            case MqttSubscribePacket subscribe:
                AddUserProperties(strings, subscribe.UserProperties);
                foreach (var filter in subscribe.TopicFilters)
                {
                    strings.Add(filter.Topic);
                    if ((int)filter.QualityOfServiceLevel > 2 || (int)filter.RetainHandling > 2)
                    {
                        forbidden = "subscription QoS or Retain Handling 3";
                    }
                }

                if (subscribe.TopicFilters.Count == 0)
                {
                    forbidden = "SUBSCRIBE without filters";
                }

                break;
            case MqttUnsubscribePacket unsubscribe:
                strings.AddRange(unsubscribe.TopicFilters);
                AddUserProperties(strings, unsubscribe.UserProperties);
                if (unsubscribe.TopicFilters.Count == 0)
                {
                    forbidden = "UNSUBSCRIBE without filters";
                }

                break;
            case MqttDisconnectPacket disconnect:
                strings.AddRange([disconnect.ReasonString, disconnect.ServerReference]);
                AddUserProperties(strings, disconnect.UserProperties);
                break;
            case MqttAuthPacket auth:
                strings.AddRange([auth.AuthenticationMethod, auth.ReasonString]);
                AddUserProperties(strings, auth.UserProperties);
                break;
            case MqttPubAckPacket ack:
                strings.Add(ack.ReasonString);
                AddUserProperties(strings, ack.UserProperties);
                break;
            case MqttPubRecPacket rec:
                strings.Add(rec.ReasonString);
                AddUserProperties(strings, rec.UserProperties);
                break;
            case MqttPubRelPacket rel:
                strings.Add(rel.ReasonString);
                AddUserProperties(strings, rel.UserProperties);
                break;
            case MqttPubCompPacket comp:
                strings.Add(comp.ReasonString);
                AddUserProperties(strings, comp.UserProperties);
                break;
        }

        if (forbidden is not null)
        {
            return forbidden;
        }

        foreach (var text in strings)
        {
            if (text is null)
            {
                continue;
            }

            if (text.Contains('\0', StringComparison.Ordinal))
            {
                return $"a string with U+0000: '{text}'";
            }

            if (!replacementBytes && text.Contains('\uFFFD', StringComparison.Ordinal))
            {
                return $"a string decoded with U+FFFD: '{text}'";
            }
        }

        return null;
    }

    private static void AddUserProperties(List<string?> strings, List<MqttUserProperty>? properties)
    {
        if (properties is null)
        {
            return;
        }

        foreach (var property in properties)
        {
            strings.Add(property.Name);
            strings.Add(Encoding.UTF8.GetString(property.ValueBuffer.Span));
        }
    }

    private static List<MqttUserProperty>? UserProperties(Random random)
    {
        if (random.Next(2) == 0)
        {
            return null;
        }

        var properties = new List<MqttUserProperty>();
        for (var n = random.Next(1, 3); n > 0; n--)
        {
            properties.Add(new MqttUserProperty(Text(random, 0, 6), new ReadOnlyMemory<byte>(Encoding.UTF8.GetBytes(Text(random, 0, 6)))));
        }

        return properties;
    }

    private static ushort PacketId(Random random) => (ushort)random.Next(1, ushort.MaxValue + 1);

    private static string Topic(Random random)
    {
        var builder = new StringBuilder(Text(random, 1, 4));
        for (var levels = random.Next(3); levels > 0; levels--)
        {
            builder.Append('/').Append(Text(random, 0, 4));
        }

        return builder.ToString();
    }

    private static string Text(Random random, int minimum, int maximum)
    {
        var builder = new StringBuilder();
        for (var n = random.Next(minimum, maximum + 1); n > 0; n--)
        {
            builder.Append(Alphabet[random.Next(Alphabet.Length)]);
        }

        return builder.ToString();
    }

    private static byte[] RandomBytes(Random random, int maximum, int minimum = 0)
    {
        var bytes = new byte[random.Next(minimum, maximum + 1)];
        random.NextBytes(bytes);
        return bytes;
    }
}
