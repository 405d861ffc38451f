namespace Orleans.Mqtt.Grains;

/// <summary>
/// The outbound QoS 1/2 flow of one session over its stored state: the queue, the in-flight window (bounded by the
/// broker's limit and the client's Receive Maximum), packet ids and the acknowledgements that close a message.
/// A view, not a copy: it reads and changes the <see cref="SessionState"/> it is made over, which the session grain
/// persists. No I/O, no clock of its own, so it is tested without a silo.
/// </summary>
internal readonly struct OutboundWindow(SessionState state)
{
    /// <summary>Queues <paramref name="delivery"/> unless queue and window together hold <paramref name="maxQueued"/> already.</summary>
    /// <returns>False when full: the message is dropped (the newest one, for this session only).</returns>
    public bool TryEnqueue(SessionDelivery delivery, int maxQueued)
    {
        if (state.Queue.Count + state.Inflight.Count >= maxQueued)
        {
            return false;
        }

        state.Queue.Add(delivery);
        return true;
    }

    /// <summary>
    /// Moves queued messages into flight, in queue order, until <paramref name="window"/> messages are in flight,
    /// each with a free packet id. The ones it sends are appended at the end of <see cref="SessionState.Inflight"/>.
    /// A message that expired before onward delivery started is deleted, not sent [MQTT-3.3.2-5].
    /// </summary>
    /// <returns>How many expired messages were deleted.</returns>
    public int Fill(int window, DateTime nowUtc)
    {
        var expired = 0;
        var taken = 0;
        while (taken < state.Queue.Count && state.Inflight.Count < window)
        {
            var next = state.Queue[taken++];
            if (next.Message.IsExpired(nowUtc))
            {
                expired++;
                continue;
            }

            state.Inflight.Add(new InflightMessage { PacketId = NextPacketId(), Delivery = next });
        }

        state.Queue.RemoveRange(0, taken);
        return expired;
    }

    /// <summary>
    /// Applies a client's acknowledgement: PUBACK ends a QoS 1 message, PUBREC marks a QoS 2 message released and
    /// PUBCOMP ends it. False when it changes nothing (unknown packet id, or not the acknowledgement its QoS expects).
    /// </summary>
    public bool Acknowledge(ushort packetId, OutboundAck ack)
    {
        var index = IndexOf(packetId);
        if (index < 0)
        {
            return false;
        }

        var inflight = state.Inflight[index];
        switch (ack)
        {
            case OutboundAck.PubRec when inflight.Delivery.Qos == 2:
                inflight.Released = true;
                return true;
            case OutboundAck.PubAck when inflight.Delivery.Qos == 1:
            case OutboundAck.PubComp when inflight.Delivery.Qos == 2:
                state.Inflight.RemoveAt(index);
                return true;
            default:
                return false;
        }
    }

    // Acknowledgements mostly arrive in send order, so the match is usually the first entry (a loop: no closure per ack).
    private int IndexOf(ushort packetId)
    {
        var inflight = state.Inflight;
        for (var i = 0; i < inflight.Count; i++)
        {
            if (inflight[i].PacketId == packetId)
            {
                return i;
            }
        }

        return -1;
    }

    private ushort NextPacketId()
    {
        for (var attempt = 0; attempt < ushort.MaxValue; attempt++)
        {
            var id = state.LastPacketId == ushort.MaxValue ? (ushort)1 : (ushort)(state.LastPacketId + 1);
            state.LastPacketId = id;
            if (IndexOf(id) < 0)
            {
                return id;
            }
        }

        throw new InvalidOperationException("No free packet identifier.");
    }
}
