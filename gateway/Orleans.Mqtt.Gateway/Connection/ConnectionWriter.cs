using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using Orleans.Mqtt.Grains;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The output side of one connection: a queue any thread writes to, and a drain on the thread pool that encodes what
/// is queued, writes it to the transport and flushes. The drain runs only while there is something to write (see
/// <see cref="ConnectionOutbox{T}"/>).
/// </summary>
/// <remarks>
/// The writer is its outbox (it derives from it rather than holding one) so a connection costs one object for its
/// output, not two: memory per idle connection is what bounds a gateway (docs/benchmarks.md).
/// </remarks>
internal sealed class ConnectionWriter(MqttConnection connection) : ConnectionOutbox<Outgoing>, IThreadPoolWorkItem
{
    /// <summary>
    /// Unflushed bytes at which the drain flushes before it writes more: what a connection that does not read holds
    /// in its transport's pipe beyond this is at most one packet, and the rest of its backlog stays in the outbox, where
    /// <c>Mqtt:MaxPendingWriteBytes</c> bounds it.
    /// </summary>
    public const int FlushThreshold = 64 * 1024;

    // Deliveries queued and not yet written: what Mqtt:MaxPendingWrites bounds for QoS 0.
    private int _pendingDeliveries;

    /// <summary>Deliveries queued and not yet written.</summary>
    public int PendingDeliveries => Volatile.Read(ref _pendingDeliveries);

    /// <summary>Payload and topic bytes of the deliveries queued and not yet written (what <c>Mqtt:MaxPendingWriteBytes</c> bounds).</summary>
    public long PendingBytes => QueuedWeight;

    /// <summary>The bytes a queued delivery holds that count against <c>Mqtt:MaxPendingWriteBytes</c>: its payload and topic.</summary>
    public static long SizeOf(Delivery delivery) => delivery.Message.Payload.Length + delivery.Message.Topic.Length;

    /// <summary>
    /// Queues a packet or delivery to write, and starts the drain when none runs. Callers hold the connection's gate,
    /// so items go out in the order the protocol made them.
    /// </summary>
    public void Enqueue(Outgoing item) => TryEnqueue(item, long.MaxValue);

    /// <summary>
    /// Queues <paramref name="item"/> like <see cref="Enqueue"/> unless it would take <see cref="PendingBytes"/> over
    /// <paramref name="maxPendingBytes"/>: false then, and nothing is queued. (After the connection's output ended
    /// nothing is queued either, but that is no budget matter: true.)
    /// </summary>
    public bool TryEnqueue(Outgoing item, long maxPendingBytes)
    {
        if (!TryWrite(item, maxPendingBytes, out var startDrain, out var overBudget))
        {
            return !overBudget;
        }

        if (item.Delivery is not null)
        {
            Interlocked.Increment(ref _pendingDeliveries);
            connection.Gateway.Metrics.PendingWriteBytes.Add(WeightOf(item));
        }

        if (startDrain)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);
        }

        return true;
    }

    /// <inheritdoc />
    protected override long WeightOf(Outgoing item) => item.Delivery is { Kind: DeliveryKind.Publish } d ? SizeOf(d) : 0;

    void IThreadPoolWorkItem.Execute() => _ = DrainAsync();

    /// <summary>Encodes <paramref name="packet"/> with the connection's formatter and writes it.</summary>
    public void Write(PipeWriter output, MqttPacket packet)
    {
        var formatter = connection.Formatter;
        var buffer = formatter.Encode(packet);
        try
        {
            Write(output, buffer);
        }
        finally
        {
            formatter.Cleanup();
        }
    }

    /// <summary>Writes an encoded packet (header and payload segments) and counts its bytes.</summary>
    public void Write(PipeWriter output, MqttPacketBuffer buffer)
    {
        output.Write(buffer.Packet.AsSpan());
        foreach (var segment in buffer.Payload)
        {
            output.Write(segment.Span);
        }

        connection.Gateway.Metrics.BytesSent.Add(buffer.Length);
    }

    /// <summary>Writes what is queued, flushes, and ends when the outbox is empty (the next write starts it again).</summary>
    private async Task DrainAsync()
    {
        var output = connection.Output;
        try
        {
            do
            {
                while (TryRead(out var item))
                {
                    if (item.Delivery is not null)
                    {
                        Interlocked.Decrement(ref _pendingDeliveries);
                        connection.Gateway.Metrics.PendingWriteBytes.Add(-WeightOf(item));
                    }

                    if (item.Packet is { } packet)
                    {
                        Write(output, packet);
                    }
                    else if (item.Delivery is { } delivery)
                    {
                        connection.WriteDelivery(output, delivery);
                    }

                    if (item.Terminal)
                    {
                        await output.FlushAsync();
                        await output.CompleteAsync();
                        connection.StopReading(closing: true);

                        // Only now: the end of the connection waits for this drain, so the packet is out before the close.
                        StopAndRelease();
                        return;
                    }

                    if (output.CanGetUnflushedBytes && output.UnflushedBytes >= FlushThreshold)
                    {
                        var partial = await output.FlushAsync();
                        if (partial.IsCompleted || partial.IsCanceled)
                        {
                            StopAndRelease();
                            return;
                        }
                    }
                }

                var flush = await output.FlushAsync();
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    StopAndRelease();
                    return;
                }
            }
            while (!TryEndDrain());
        }
        catch (Exception ex)
        {
            // A connection that is gone is not worth a log line; anything else is. Either way the read loop ends too.
            if (ex is not (IOException or ConnectionResetException or InvalidOperationException or ObjectDisposedException or OperationCanceledException))
            {
                connection.LogFailure(ex);
            }

            StopAndRelease();
            connection.StopReading(closing: false);
        }
    }

    /// <summary>Stops the outbox and takes what it still held off the queued-bytes gauge.</summary>
    private void StopAndRelease()
    {
        var dropped = Stop();
        if (dropped > 0)
        {
            connection.Gateway.Metrics.PendingWriteBytes.Add(-dropped);
        }
    }
}
