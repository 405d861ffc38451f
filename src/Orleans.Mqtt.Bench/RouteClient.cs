using System.Diagnostics;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// A connection of the subroute scenario. As a subscriber it waits for the one trial message it expects
/// (<see cref="ExpectDelivery"/>); as a publisher it sends one QoS 1 message at a time and completes with
/// its PUBACK (<see cref="PublishAsync"/>). Both times are taken on the receive loop, when the packet is read.
/// </summary>
internal sealed class RouteClient(int index, string role, BenchOptions options, RunState state)
    : BenchClient(state, $"{role} {index}", options.ProtocolLevel, 4096)
{
    private readonly int _payloadSize = options.Size;
    private volatile Expectation? _expected;
    private volatile PendingPublish? _pending;
    private ushort _packetId;

    /// <summary>Index of the connection in its pool; publishers write it into the payload header.</summary>
    public int Index => index;

    /// <summary>
    /// Arms the subscriber for the message of <paramref name="trial"/>: the task completes with the Stopwatch
    /// timestamp at which it arrived, or fails when the connection ends. Deliveries of other trials are ignored.
    /// </summary>
    public Task<long> ExpectDelivery(long trial)
    {
        var expectation = new Expectation(trial, new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously));
        _expected = expectation;
        if (!IsConnected)
        {
            expectation.Delivered.TrySetException(new IOException($"{Name} is not connected"));
        }

        return expectation.Delivered.Task;
    }

    /// <summary>
    /// Publishes one QoS 1 message on <paramref name="topic"/>: a payload header carrying <paramref name="trial"/>
    /// and the send time, or an empty payload when <paramref name="trial"/> is null (clears a retained message).
    /// Completes with the PUBACK's reason code and the Stopwatch timestamp at which it arrived.
    /// </summary>
    public async Task<(byte Reason, long Timestamp)> PublishAsync(string topic, long? trial, bool retain, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // One publish at a time per connection; a new packet id each time, so a late PUBACK of a given-up publish is ignored.
        _packetId = (ushort)(_packetId % ushort.MaxValue + 1);
        var pending = new PendingPublish(_packetId, new TaskCompletionSource<(byte, long)>(TaskCreationOptions.RunContinuationsAsynchronously));
        _pending = pending;

        var encodedTopic = MqttWire.EncodeString(topic);
        var payloadSize = trial is null ? 0 : _payloadSize;
        var packet = new byte[MqttWire.PublishLength(Version, encodedTopic.Length, 1, payloadSize)];
        var header = MqttWire.WritePublishHeader(packet, Version, encodedTopic, 1, _packetId, payloadSize, retain);
        if (trial is { } number)
        {
            var payload = packet.AsSpan(header);
            var now = Stopwatch.GetTimestamp();
            new PayloadHeader(index, number, now, now).WriteTo(payload);
            payload[PayloadHeader.Size..].Fill((byte)'.');
        }

        await SendAsync(packet).ConfigureAwait(false);
        return await pending.Acknowledged.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    protected override void OnPublish(ReadOnlySpan<byte> payload, int qos)
    {
        var now = Stopwatch.GetTimestamp();
        if (_expected is { } expected && PayloadHeader.TryRead(payload, out var header) && header.Sequence == expected.Trial)
        {
            expected.Delivered.TrySetResult(now);
        }
    }

    /// <inheritdoc />
    protected override void OnAcknowledged(ushort packetId, byte reason)
    {
        var now = Stopwatch.GetTimestamp();
        if (_pending is { } pending && pending.PacketId == packetId)
        {
            pending.Acknowledged.TrySetResult((reason, now));
        }
    }

    /// <inheritdoc />
    protected override void OnConnectionLost(string message)
    {
        var failure = new IOException($"{Name}: {message}");
        _expected?.Delivered.TrySetException(failure);
        _pending?.Acknowledged.TrySetException(failure);
    }

    private sealed record Expectation(long Trial, TaskCompletionSource<long> Delivered);

    private sealed record PendingPublish(ushort PacketId, TaskCompletionSource<(byte Reason, long Timestamp)> Acknowledged);
}
