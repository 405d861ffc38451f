using System.Buffers;
using System.Text;
using MQTTnet.Adapter;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace Orleans.Mqtt.Fuzzing;

/// <summary>
/// Structure-aware fuzzing of MQTT 3.1.1 and 5 packets, shared by the validator's fuzz test and the load tool's
/// socket-level fuzz scenario: valid client packets of every type generated with MQTTnet's encoder, mutations of
/// their lengths, flags, properties, UTF-8 strings and packet ids, and an oracle naming what the specification
/// forbids in the packet MQTTnet's decoder makes of the mutated bytes. Deterministic for a seeded <see cref="Random"/>.
/// </summary>
internal static class MqttFuzzPackets
{
    /// <summary>Kinds of packet <see cref="Generate"/> makes: CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT or AUTH.</summary>
    public const int PacketKinds = 10;

    /// <summary>The kind of <see cref="Generate"/> that makes a CONNECT.</summary>
    public const int ConnectKind = 0;

    // Characters of generated strings: ASCII, two-, three- and four-byte UTF-8, never U+FFFD or U+0000.
    private static readonly string[] Alphabet = ["a", "b", "z", "0", "/", "-", "_", " ", "é", "ß", "€", "中", "𝄞", "😀"];

    /// <summary>A whole packet on the wire: the first byte, the remaining length (of <paramref name="body"/>) and the body.</summary>
    public static byte[] Frame(byte header, ReadOnlySpan<byte> body)
    {
        Span<byte> length = stackalloc byte[4];
        var size = 0;
        var remaining = body.Length;
        do
        {
            var digit = (byte)(remaining % 128);
            remaining /= 128;
            length[size++] = remaining > 0 ? (byte)(digit | 0x80) : digit;
        }
        while (remaining > 0);

        var packet = new byte[1 + size + body.Length];
        packet[0] = header;
        length[..size].CopyTo(packet.AsSpan(1));
        body.CopyTo(packet.AsSpan(1 + size));
        return packet;
    }

    /// <summary>A valid client packet of <paramref name="kind"/> (0 to <see cref="PacketKinds"/> - 1) for <paramref name="version"/>.</summary>
    public static MqttPacket Generate(Random random, MqttProtocolVersion version, int kind)
    {
        var v5 = version == MqttProtocolVersion.V500;
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

    /// <summary>One mutation of a packet's first byte and body (the packet type stays; the remaining length follows the body).</summary>
    public static (byte Header, byte[] Body) Mutate(Random random, byte header, byte[] body)
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
    public static string? ForbiddenAfterDecoding(byte header, byte[] body, MqttProtocolVersion version)
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

    /// <summary>Splits a whole packet into its first byte and its body (what follows the remaining length).</summary>
    public static (byte Header, byte[] Body) Split(byte[] packet)
    {
        var at = 1;
        while ((packet[at] & 0x80) != 0)
        {
            at++;
        }

        return (packet[0], packet[(at + 1)..]);
    }

    /// <summary>The packet as MQTTnet's encoder writes it for <paramref name="version"/>.</summary>
    public static byte[] Encode(MqttPacket packet, MqttProtocolVersion version)
    {
        var formatter = new MqttPacketFormatterAdapter(version, new MqttBufferWriter(256, 65536));
        var encoded = formatter.Encode(packet);
        var bytes = new byte[encoded.Length];
        encoded.Packet.AsSpan().CopyTo(bytes);
        encoded.Payload.CopyTo(bytes.AsSpan(encoded.Packet.Count));
        formatter.Cleanup();
        return bytes;
    }
}
