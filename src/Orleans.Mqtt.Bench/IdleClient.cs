namespace Orleans.Mqtt.Bench;

/// <summary>A connection of the conn scenario: it connects, maybe subscribes, and otherwise only answers the broker.</summary>
internal sealed class IdleClient(int index, BenchOptions options, RunState state)
    : BenchClient(state, $"connection {index}", options.ProtocolLevel, 512)
{
    /// <summary>Index of the connection in the whole run (across worker processes).</summary>
    public int Index => index;
}
