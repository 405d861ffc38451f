using System.Diagnostics;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Ownership.Etcd;
using Xunit.Abstractions;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>One owner per client id across gateways, checked on the wire and in etcd.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterOwnershipTests(ClusterFixture cluster, ITestOutputHelper output)
{
    [Fact]
    public async Task Two_hundred_concurrent_connects_with_one_client_id_across_both_gateways_leave_exactly_one_owner()
    {
        const int Contenders = 200;
        var clock = Stopwatch.StartNew();
        var worstOverlap = TimeSpan.MinValue;
        for (var round = 0; round < 3; round++)
        {
            var clientId = $"owner-{round}-{Guid.NewGuid():N}"[..24];
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var contenders = Enumerable.Range(0, Contenders)
                .Select(i => ContendAsync(i % 2 == 0 ? cluster.GatewayAMqttPort : cluster.GatewayBMqttPort, clientId, start.Task, clock))
                .ToList();
            start.SetResult();

            // Everyone got an answer; the replaced connections close, then the last owner must hold on: a later close
            // of it (a takeover arriving late) would show within the half second it is watched.
            var outcomes = await Task.WhenAll(contenders.Select(c => c.Connected));
            var accepted = outcomes.Count(o => o);
            var settling = Stopwatch.StartNew();
            while (contenders.Count(c => !c.Closed.IsCompleted) > 1 && settling.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(20);
            }

            await Task.Delay(500);
            var open = contenders.Where(c => !c.Closed.IsCompleted).ToList();

            Assert.True(accepted >= 1, $"round {round}: no connect was accepted: {string.Join("; ", contenders.Select(c => c.Error).Distinct().Take(5))}\n{cluster.Logs(20)}");
            Assert.True(
                open.Count == 1,
                $"round {round}: {open.Count} connections still open, {accepted} accepted; refused or failed: " +
                string.Join("; ", contenders.Where(c => c.ConnAckAt is null).GroupBy(c => c.Error ?? "refused by CONNACK").Select(g => $"{g.Count()} × {g.Key}")) +
                "; accepted ones closed with: " +
                string.Join(", ", contenders.Where(c => c.ConnAckAt is not null && c.Closed.IsCompleted).GroupBy(c => c.Closed.Result).Select(g => $"{g.Count()} × 0x{g.Key:X2}")) +
                $"\n{cluster.Logs(20)}");
            var survivor = open[0];

            // Every replaced connection was told why (MQTT 5: DISCONNECT 0x8E) before it was closed.
            var replaced = contenders.Where(c => c != survivor && c.ConnAckAt is not null).ToList();
            await Task.WhenAll(replaced.Select(c => c.Closed));
            var untold = replaced.Where(c => c.Closed.Result != 0x8E).Select(c => $"0x{c.Closed.Result:x2} {c.Error} (CONNACK at {c.ConnAckAt?.TotalMilliseconds:F0} ms, closed at {c.ClosedAt?.TotalMilliseconds:F0} ms, gateway port {c.Port}, client port {c.LocalPort})").ToList();
            Assert.True(untold.Count == 0, $"round {round}: {untold.Count} of {replaced.Count} replaced connections were not closed with 0x8E: {string.Join("; ", untold.Take(5))}");

            // At most one connected at any moment: ordered by CONNACK, each connection was closed before the next
            // one was accepted. Both times are taken where the client reads them, on a shared two-core machine.
            var ordered = contenders.Where(c => c.ConnAckAt is not null).OrderBy(c => c.ConnAckAt).ToList();
            Assert.Same(survivor, ordered[^1]);
            for (var i = 0; i + 1 < ordered.Count; i++)
            {
                var overlap = ordered[i].ClosedAt!.Value - ordered[i + 1].ConnAckAt!.Value;
                worstOverlap = overlap > worstOverlap ? overlap : worstOverlap;
            }

            // etcd holds exactly one owner record for the client id, naming the survivor's gateway, on that gateway's lease.
            var owners = await ReadOwnersAsync(clientId);
            var owner = Assert.Single(owners);
            Assert.Equal(survivor.Port == cluster.GatewayAMqttPort ? cluster.Gateways[0].GatewayId : cluster.Gateways[1].GatewayId, owner.GatewayId);
            Assert.NotEqual(0, owner.LeaseId);
            output.WriteLine($"round {round}: {accepted} of {Contenders} accepted in turn, {replaced.Count} replaced with 0x8E, owner {owner.GatewayId}/{owner.ConnectionId}");

            foreach (var c in contenders)
            {
                await c.DisposeAsync();
            }

            // The owner's connection ended: its record is released.
            var released = Stopwatch.StartNew();
            while ((await ReadOwnersAsync(clientId)).Count > 0)
            {
                Assert.True(released.Elapsed < TimeSpan.FromSeconds(10), $"round {round}: the owner record outlived its connection by 10 s");
                await Task.Delay(50);
            }
        }

        // Negative: every replaced connection was seen closed before the next CONNACK, by at least that much.
        output.WriteLine($"largest overlap seen by the clients between a replaced connection's close and the next CONNACK: {worstOverlap.TotalMilliseconds:F1} ms");
        Assert.True(worstOverlap < TimeSpan.FromMilliseconds(50), $"a replaced connection was still open {worstOverlap.TotalMilliseconds:F1} ms after the next one was accepted");
    }

    /// <summary>Every owner record under the client id's key prefix, read straight from etcd.</summary>
    private async Task<List<SessionOwner>> ReadOwnersAsync(string clientId)
    {
        using var etcd = new EtcdClient(cluster.EtcdClientUrl, configureChannelOptions: o => o.Credentials = ChannelCredentials.Insecure);
        var key = ByteString.CopyFromUtf8($"{new EtcdOwnershipOptions().KeyPrefix}/{cluster.ClusterId}/owners/{clientId}");
        var response = await etcd.GetAsync(new RangeRequest { Key = key, RangeEnd = EtcdClient.GetRangeEnd(key) });
        return [.. response.Kvs.Select(kv => OwnerRecordCodec.Decode(kv.Value.Span))];
    }

    private static Contender ContendAsync(int port, string clientId, Task start, Stopwatch clock) => new(port, clientId, start, clock);

    /// <summary>One connection trying to own the client id: when it got CONNACK, and how it was closed.</summary>
    private sealed class Contender : IAsyncDisposable
    {
        private readonly TaskCompletionSource<bool> _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource<byte> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private RawMqttClient? _client;

        public Contender(int port, string clientId, Task start, Stopwatch clock)
        {
            Port = port;
            _ = RunAsync(clientId, start, clock);
        }

        public int Port { get; }

        public string? Error { get; private set; }

        public int LocalPort => _client?.LocalPort ?? 0;

        public TimeSpan? ConnAckAt { get; private set; }

        public TimeSpan? ClosedAt { get; private set; }

        /// <summary>True when CONNACK accepted the connection.</summary>
        public Task<bool> Connected => _connected.Task;

        /// <summary>The DISCONNECT reason code the server sent before closing (0xFF: closed without one).</summary>
        public Task<byte> Closed => _closed.Task;

        public async ValueTask DisposeAsync()
        {
            if (_client is not null)
            {
                await _client.DisposeAsync();
            }
        }

        private async Task RunAsync(string clientId, Task start, Stopwatch clock)
        {
            try
            {
                await start;
                _client = await RawMqttClient.ConnectAsync(Port);
                await _client.SendAsync(RawMqttClient.Connect(5, clientId, cleanSession: true));
                var connack = await _client.ReadPacketAsync(TimeSpan.FromSeconds(60));
                if (connack is not { } c || c.Header >> 4 != 2 || c.Body[1] != 0)
                {
                    Error = connack is { } refused && refused.Header >> 4 == 2 ? $"CONNACK 0x{refused.Body[1]:X2}" : "no CONNACK";
                    _connected.TrySetResult(false);
                    ClosedAt = clock.Elapsed;
                    _closed.TrySetResult(0xFF);
                    return;
                }

                ConnAckAt = clock.Elapsed;
                _connected.TrySetResult(true);
                while (true)
                {
                    (byte Header, byte[] Body)? packet;
                    try
                    {
                        packet = await _client.ReadPacketAsync(TimeSpan.FromMinutes(5));
                    }
                    catch (OperationCanceledException)
                    {
                        continue;
                    }

                    if (packet is null)
                    {
                        Error = _client.ClosedBy ?? "closed without DISCONNECT";
                        ClosedAt = clock.Elapsed;
                        _closed.TrySetResult(0xFF);
                        return;
                    }

                    if (packet.Value.Header >> 4 == 14)
                    {
                        ClosedAt = clock.Elapsed;
                        _closed.TrySetResult(packet.Value.Body.Length > 0 ? packet.Value.Body[0] : (byte)0);
                        return;
                    }
                }
            }
            catch (Exception e)
            {
                Error = e.GetType().Name + ": " + e.Message;
                ClosedAt ??= clock.Elapsed;
                _connected.TrySetResult(false);
                _closed.TrySetResult(0xFF);
            }
        }
    }
}
