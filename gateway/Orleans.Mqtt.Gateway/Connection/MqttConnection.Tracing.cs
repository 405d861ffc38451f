using System.Diagnostics;

namespace Orleans.Mqtt.Gateway;

// Traced QoS 1/2 copies written to this client, remembered until it acknowledges them (the settle span). Written by
// the drain, read by the read loop; created only once a traced copy is sent.
internal sealed partial class MqttConnection
{
    private Dictionary<ushort, (ActivityContext Send, string Topic)>? _tracedSends;

    private void RememberTracedSend(ushort packetId, Activity send, string topic)
    {
        var sends = Volatile.Read(ref _tracedSends) ?? Interlocked.CompareExchange(ref _tracedSends, [], null) ?? _tracedSends!;
        lock (sends)
        {
            sends[packetId] = (send.Context, topic);
        }
    }

    private void SettleTracedSend(ushort packetId)
    {
        if (Volatile.Read(ref _tracedSends) is not { } sends)
        {
            return;
        }

        (ActivityContext Send, string Topic) sent;
        bool found;
        lock (sends)
        {
            found = sends.Remove(packetId, out sent);
        }

        if (found)
        {
            GatewayTracing.Settle(sent.Send, packetId, _clientId, sent.Topic);
        }
    }
}
