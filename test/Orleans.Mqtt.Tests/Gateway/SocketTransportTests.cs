using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// The gateway's own TCP transport (<see cref="SocketConnection"/>) on real loopback sockets: a peer socket on one side,
/// the connection's pipe reader and writer on the other, used the way <see cref="MqttConnection"/> uses them.
/// </summary>
public sealed class SocketTransportTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private Socket _peer = null!;
    private SocketConnection _connection = null!;

    private PipeReader Input => _connection.Transport.Input;

    private PipeWriter Output => _connection.Transport.Output;

    public async Task InitializeAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        _peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accepting = listener.AcceptAsync();
        await _peer.ConnectAsync(listener.LocalEndPoint!);
        var accepted = await accepting;
        accepted.Blocking = false;
        _connection = new SocketConnection(accepted, listener: null);
    }

    public async Task DisposeAsync()
    {
        _peer.Dispose();
        await _connection.DisposeAsync();
    }

    [Fact]
    public void The_remote_endpoint_is_the_peer()
    {
        Assert.Equal(_peer.LocalEndPoint, _connection.RemoteEndPoint);
    }

    [Fact]
    public async Task A_frame_sent_in_pieces_is_read_as_one_contiguous_segment_and_the_buffer_is_given_back_once_consumed()
    {
        var frame = Bytes(10_000, seed: 1);
        Assert.False(((SocketInput)Input).HoldsBuffer);

        // Each piece is sent only once the reader has seen the one before it: every read returns a partial frame.
        var offset = 0;
        ReadOnlySequence<byte> buffer;
        while (true)
        {
            if (offset < frame.Length)
            {
                var piece = Math.Min(3_000, frame.Length - offset);
                await _peer.SendAsync(frame.AsMemory(offset, piece));
                offset += piece;
            }

            var result = await Input.ReadAsync().AsTask().WaitAsync(Patience);
            buffer = result.Buffer;
            if (buffer.Length == frame.Length)
            {
                break;
            }

            Assert.True(buffer.Length < frame.Length);

            // As the connection does with a partial packet: nothing consumed, everything examined.
            Input.AdvanceTo(buffer.Start, buffer.End);
        }

        AssertWholeThenConsume(frame, buffer);
    }

    [Fact]
    public async Task A_small_frame_into_an_empty_buffer_takes_an_array_of_its_own_size_not_a_whole_receive_buffer()
    {
        // A PINGREQ, what an idle connection sends.
        await _peer.SendAsync(new byte[] { 0xC0, 0x00 }.AsMemory());
        var buffer = await ReadAtLeastAsync(2);

        Assert.Equal(new byte[] { 0xC0, 0x00 }, buffer.ToArray());
        Assert.True(MemoryMarshal.TryGetArray(buffer.First, out var array));
        Assert.True(array.Array!.Length < SocketInput.ReceiveSize, $"a {array.Array.Length}-byte array for 2 bytes");
        Input.AdvanceTo(buffer.End);
        Assert.False(((SocketInput)Input).HoldsBuffer);
    }

    [Fact]
    public async Task A_frame_larger_than_the_receive_size_many_times_over_arrives_whole()
    {
        var frame = Bytes(1024 * 1024 + 17, seed: 2);
        var sending = _peer.SendAsync(frame.AsMemory()).AsTask();
        var buffer = await ReadAtLeastAsync(frame.Length);
        await sending;

        AssertWholeThenConsume(frame, buffer);
    }

    [Fact]
    public async Task Frames_consumed_one_at_a_time_keep_the_rest_for_the_next_read()
    {
        await _peer.SendAsync(new byte[] { 1, 2, 3, 4, 5, 6 });
        var buffer = await ReadAtLeastAsync(6);

        // Consume two bytes, examine all: the next read waits for more, then returns the four left and the new ones.
        Input.AdvanceTo(buffer.GetPosition(2), buffer.End);
        var next = Input.ReadAsync();
        Assert.False(next.IsCompleted);
        await _peer.SendAsync(new byte[] { 7 });
        var result = await next.AsTask().WaitAsync(Patience);
        Assert.Equal(new byte[] { 3, 4, 5, 6, 7 }, result.Buffer.ToArray());
        Input.AdvanceTo(result.Buffer.End);
    }

    [Fact]
    public async Task A_peer_closing_mid_frame_ends_the_stream_with_the_partial_bytes_still_there()
    {
        await _peer.SendAsync(new byte[] { 0x30, 0x7F, 1, 2, 3 });
        _peer.Shutdown(SocketShutdown.Send);

        ReadResult result;
        while (true)
        {
            result = await Input.ReadAsync().AsTask().WaitAsync(Patience);
            if (result.IsCompleted)
            {
                break;
            }

            Input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }

        Assert.Equal(new byte[] { 0x30, 0x7F, 1, 2, 3 }, result.Buffer.ToArray());
        Input.AdvanceTo(result.Buffer.End);
    }

    [Fact]
    public async Task A_read_waiting_for_data_is_cancelled_and_no_byte_sent_afterwards_is_lost()
    {
        var waiting = Input.ReadAsync();
        Assert.False(waiting.IsCompleted);
        Input.CancelPendingRead();
        var cancelled = await waiting.AsTask().WaitAsync(Patience);
        Assert.True(cancelled.IsCanceled);

        await _peer.SendAsync(new byte[] { 9, 8, 7 });
        var buffer = await ReadAtLeastAsync(3);
        Assert.Equal(new byte[] { 9, 8, 7 }, buffer.ToArray());
        Input.AdvanceTo(buffer.End);
    }

    [Fact]
    public async Task A_cancel_before_the_read_makes_the_next_read_return_cancelled()
    {
        Input.CancelPendingRead();
        var result = await Input.ReadAsync();
        Assert.True(result.IsCanceled);
    }

    [Fact]
    public async Task Aborting_ends_a_waiting_read_and_closes_the_peer_side()
    {
        var waiting = Input.ReadAsync();
        _connection.Abort(new ConnectionAbortedException("test"));

        var result = await waiting.AsTask().WaitAsync(Patience);
        Assert.True(result.IsCompleted);
        var received = await _peer.ReceiveAsync(new byte[16].AsMemory()).AsTask().WaitAsync(Patience);
        Assert.Equal(0, received);
    }

    [Fact]
    public async Task Written_bytes_go_out_at_the_flush_and_the_buffer_is_given_back()
    {
        var packet = Bytes(300, seed: 3);
        packet.CopyTo(Output.GetSpan(packet.Length));
        Output.Advance(packet.Length);
        Assert.Equal(packet.Length, Output.UnflushedBytes);

        var flush = await Output.FlushAsync();
        Assert.False(flush.IsCompleted);
        Assert.Equal(0, Output.UnflushedBytes);
        Assert.False(((SocketOutput)Output).HoldsBuffer);
        Assert.Equal(packet, await ReceiveAsync(packet.Length));
    }

    [Fact]
    public async Task A_flush_to_a_peer_that_does_not_read_waits_until_it_reads()
    {
        // More than loopback's socket buffers on both sides take: the flush cannot complete before the peer reads.
        var data = Bytes(64 * 1024 * 1024, seed: 4);
        var written = 0;
        while (written < data.Length)
        {
            var chunk = Math.Min(64 * 1024, data.Length - written);
            data.AsSpan(written, chunk).CopyTo(Output.GetSpan(chunk));
            Output.Advance(chunk);
            written += chunk;
        }

        var flush = Output.FlushAsync();
        Assert.False(flush.IsCompleted);

        var received = await ReceiveAsync(data.Length);
        var result = await flush.AsTask().WaitAsync(Patience);
        Assert.False(result.IsCompleted);
        Assert.True(data.AsSpan().SequenceEqual(received));
    }

    [Fact]
    public async Task Completing_the_output_sends_what_was_flushed_then_closes_the_connection()
    {
        Output.Write(new byte[] { 0xE0, 0x00 });
        await Output.FlushAsync();
        await Output.CompleteAsync();

        Assert.Equal(new byte[] { 0xE0, 0x00 }, await ReceiveAsync(2));
        var end = await _peer.ReceiveAsync(new byte[1].AsMemory()).AsTask().WaitAsync(Patience);
        Assert.Equal(0, end);
        Assert.True(_connection.IsClosed);
        Assert.Throws<InvalidOperationException>(() => Output.GetSpan());
    }

    // The frame read in one contiguous segment; once it is consumed, the input gives its buffer back.
    private void AssertWholeThenConsume(byte[] frame, ReadOnlySequence<byte> buffer)
    {
        Assert.True(buffer.IsSingleSegment);
        Assert.Equal(frame, buffer.ToArray());
        Input.AdvanceTo(buffer.End);
        Assert.False(((SocketInput)Input).HoldsBuffer);
    }

    private async Task<ReadOnlySequence<byte>> ReadAtLeastAsync(int length)
    {
        while (true)
        {
            var result = await Input.ReadAsync().AsTask().WaitAsync(Patience);
            if (result.Buffer.Length >= length || result.IsCompleted)
            {
                return result.Buffer;
            }

            Input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    private async Task<byte[]> ReceiveAsync(int length)
    {
        var received = new byte[length];
        var offset = 0;
        while (offset < length)
        {
            var count = await _peer.ReceiveAsync(received.AsMemory(offset)).AsTask().WaitAsync(Patience);
            Assert.NotEqual(0, count);
            offset += count;
        }

        return received;
    }

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
