namespace Orleans.Mqtt.Bench;

/// <summary>
/// A connection of the conn scenario: it connects, maybe subscribes, and otherwise only answers the broker. For the
/// route check it can wait for one message (<see cref="ExpectDelivery"/>); other deliveries are acknowledged and ignored.
/// </summary>
internal sealed class IdleClient(int index, BenchOptions options, RunState state)
    : BenchClient(state, $"connection {index}", options.ProtocolLevel, 512)
{
    private volatile TaskCompletionSource? _expected;
    private long _expectedTrial = -1;

    /// <summary>Index of the connection in the whole run (across worker processes).</summary>
    public int Index => index;

    /// <summary>Arms the connection for the message carrying <paramref name="trial"/>; the task completes when it arrives.</summary>
    public Task ExpectDelivery(long trial)
    {
        var expected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _expectedTrial, trial);
        _expected = expected;
        if (!IsConnected)
        {
            expected.TrySetException(new IOException($"{Name} is not connected"));
        }

        return expected.Task;
    }

    /// <inheritdoc />
    protected override void OnPublish(ReadOnlySpan<byte> payload, int qos)
    {
        if (_expected is { } expected && PayloadHeader.TryRead(payload, out var header) && header.Sequence == Volatile.Read(ref _expectedTrial))
        {
            expected.TrySetResult();
        }
    }

    /// <inheritdoc />
    protected override void OnConnectionLost(string message) => _expected?.TrySetException(new IOException($"{Name}: {message}"));
}
