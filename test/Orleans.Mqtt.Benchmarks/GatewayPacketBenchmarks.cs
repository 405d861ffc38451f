using System.Buffers;
using BenchmarkDotNet.Attributes;
using MQTTnet.Adapter;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Benchmarks;

/// <summary>
/// The gateway's per-packet work without the network: framing and decoding an inbound MQTT 5 QoS 1 PUBLISH of
/// 100 bytes, and mapping plus encoding an outbound one, as a connection does for each message.
/// </summary>
[MemoryDiagnoser]
public class GatewayPacketBenchmarks
{
    private readonly MqttPacketFormatterAdapter _formatter = new(MqttProtocolVersion.V500, new MqttBufferWriter(4096, 65536));
    private ReadOnlySequence<byte> _inbound;
    private Delivery _delivery = null!;

    [GlobalSetup]
    public void Setup()
    {
        var packet = new MqttPublishPacket
        {
            Topic = "site7/line3/dev1234/k1/m5",
            Payload = new ReadOnlySequence<byte>(new byte[100]),
            QualityOfServiceLevel = MqttQualityOfServiceLevel.AtLeastOnce,
            PacketIdentifier = 42,
        };
        var encoded = _formatter.Encode(packet);
        var bytes = new byte[encoded.Length];
        encoded.Packet.AsSpan().CopyTo(bytes);
        encoded.Payload.CopyTo(bytes.AsSpan(encoded.Packet.Count));
        _formatter.Cleanup();
        _inbound = new ReadOnlySequence<byte>(bytes);
        _delivery = new Delivery(7, new MqttMessage { Topic = packet.Topic, Payload = new byte[100], Qos = 1 }, 1, false, 42);
    }

    /// <summary>Finding the frame and decoding the PUBLISH, as the read loop does.</summary>
    [Benchmark]
    public int DecodePublish()
    {
        MqttFrame.TryRead(_inbound, 1 << 20, out var fixedHeader, out var headerLength, out var totalLength);
        var body = _inbound.Slice(headerLength, totalLength - headerLength).ToArray();
        var packet = (MqttPublishPacket)_formatter.Decode(new ReceivedMqttPacket(fixedHeader, new ArraySegment<byte>(body), totalLength));
        return packet.PacketIdentifier;
    }

    /// <summary>Turning a delivery into a PUBLISH and encoding it, as the connection's drain does.</summary>
    [Benchmark]
    public int EncodeDelivery()
    {
        var packet = MessageMapping.ToPublish(_delivery, v5: true, DateTime.UtcNow);
        var buffer = _formatter.Encode(packet);
        var length = buffer.Length;
        _formatter.Cleanup();
        return length;
    }
}
