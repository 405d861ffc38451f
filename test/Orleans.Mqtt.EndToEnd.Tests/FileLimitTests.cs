using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using MQTTnet;
using MQTTnet.Protocol;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>
/// The broker under an open-file limit far below <c>Mqtt:MaxConnections</c> (<c>prlimit --nofile</c>): a storm past
/// the limit is refused, CONNACK 0x97 while descriptors are left and a closed socket past that, and the broker, its
/// clients and new clients once some leave go on. Without the limit's budget the broker met EMFILE and then died
/// loading an assembly (docs/benchmarks.md, "The open-file limit").
/// </summary>
public sealed partial class FileLimitTests : IAsyncLifetime
{
    private const int FileLimit = 600;
    private BrokerProcess _broker = null!;

    public async Task InitializeAsync() =>
        _broker = await BrokerProcess.StartAsync(new Dictionary<string, string> { ["Mqtt__FileDescriptorReserve"] = "128" }, fileLimit: FileLimit);

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    [Fact]
    public async Task A_storm_past_the_open_file_limit_is_refused_and_the_broker_and_its_clients_go_on()
    {
        // The budget the broker worked out at start, and the warning that it lowered the default Mqtt:MaxConnections.
        var line = await _broker.WaitForOutputAsync(l => l.Contains($"Open file limit {FileLimit} ", StringComparison.Ordinal));
        var budget = BudgetLine().Match(line);
        Assert.True(budget.Success, line);
        var connections = int.Parse(budget.Groups["connections"].Value, CultureInfo.InvariantCulture);
        var sockets = int.Parse(budget.Groups["sockets"].Value, CultureInfo.InvariantCulture);
        Assert.InRange(connections, 10, FileLimit - 128);
        Assert.True(sockets > connections, line);
        await _broker.WaitForOutputAsync(l => l.Contains($"Mqtt:MaxConnections 100000 is more than the open file limit {FileLimit} allows", StringComparison.Ordinal));

        var held = new ConcurrentBag<RawMqttClient>();
        var idle = new List<Socket>();
        using var subscriber = await MqttClients.ConnectAsync(_broker.MqttPort);
        using var publisher = await MqttClients.ConnectAsync(_broker.MqttPort);
        try
        {
            var received = new ConcurrentQueue<string>();
            subscriber.ApplicationMessageReceivedAsync += e =>
            {
                received.Enqueue(e.ApplicationMessage.ConvertPayloadToString());
                return Task.CompletedTask;
            };
            await subscriber.SubscribeAsync("fd/limit", MqttQualityOfServiceLevel.AtLeastOnce);

            // Every session slot taken.
            await Parallel.ForEachAsync(Enumerable.Range(0, connections - 2), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, _) =>
                held.Add(await RawMqttClient.ConnectAcceptedAsync(_broker.MqttPort, 5, $"fd-held-{i}")));

            // With descriptors left, the surplus reads CONNECT and is refused with 0x97 Quota exceeded.
            for (var i = 0; i < 10; i++)
            {
                await using var refused = await RawMqttClient.ConnectAsync(_broker.MqttPort);
                await refused.SendAsync(RawMqttClient.Connect(5, $"fd-refused-{i}"));
                var (header, body) = await refused.ReadPacketAsync() ?? throw new Xunit.Sdk.XunitException("closed without CONNACK");
                Assert.Equal(0x20, header);
                Assert.Equal(0x97, body[1]);
                Assert.Empty(await refused.ReadUntilClosedAsync());
            }

            // Sockets that send nothing fill the rest of what the limit leaves; 10 past it are closed as soon as accepted.
            for (var i = 0; i < sockets - connections + 10; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync("127.0.0.1", _broker.MqttPort);
                idle.Add(socket);
            }

            // All at once, well within Mqtt:ConnectTimeout, after which the broker closes the ones it holds too.
            var closed = (await Task.WhenAll(idle.Select(ClosedByServerAsync))).Count(c => c);

            // 10, and up to 10 more while the broker still counted the sockets of the refused CONNECTs it had closed.
            Assert.InRange(closed, 10, 20);
            Assert.True(await _broker.GetCounterAsync("mqtt_connections_refused_total", "reason=\"file_limit\"") >= 10);
            Assert.True(await _broker.GetCounterAsync("mqtt_connections_refused_total", "reason=\"max_connections\"") >= 10);
            await _broker.WaitForOutputAsync(l => l.Contains("refused (file_limit)", StringComparison.Ordinal));
            await _broker.WaitForOutputAsync(l => l.Contains("refused (max_connections): connection limit", StringComparison.Ordinal));

            // The broker is up and its clients still talk.
            Assert.Null(_broker.ExitCode);
            await publisher.PublishStringAsync("fd/limit", "still here", MqttQualityOfServiceLevel.AtLeastOnce);
            await WaitUntilAsync(() => Task.FromResult(received.Contains("still here")), "the subscriber never got the message");
            Assert.True(publisher.IsConnected && subscriber.IsConnected);

            // Once some leave, new clients get in.
            foreach (var socket in idle)
            {
                socket.Dispose();
            }

            idle.Clear();
            for (var i = 0; i < 5 && held.TryTake(out var leaving); i++)
            {
                await leaving.DisposeAsync();
            }

            IMqttClient? late = null;
            await WaitUntilAsync(async () => (late = await TryConnectAsync()) is not null, "no new client got in after others left");
            using (late)
            {
                Assert.True(late!.IsConnected);
            }

            Assert.Null(_broker.ExitCode);
        }
        finally
        {
            foreach (var socket in idle)
            {
                socket.Dispose();
            }

            foreach (var client in held)
            {
                await client.DisposeAsync();
            }
        }
    }

    // An accepted socket the broker holds waits for CONNECT (Mqtt:ConnectTimeout, 10 s); a refused one is closed at once.
    // Half a second is long enough for a close to arrive on loopback, and far less than the connect timeout.
    private static async Task<bool> ClosedByServerAsync(Socket socket)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        try
        {
            return await socket.ReceiveAsync(new byte[1], SocketFlags.None, cts.Token) == 0;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (SocketException)
        {
            return true;
        }
    }

    private async Task<IMqttClient?> TryConnectAsync()
    {
        var client = new MqttClientFactory().CreateMqttClient();
        try
        {
            if ((await client.ConnectAsync(MqttClients.Options(_broker.MqttPort))).ResultCode == MqttClientConnectResultCode.Success)
            {
                return client;
            }
        }
        catch (MQTTnet.Exceptions.MqttCommunicationException)
        {
            // Closed at accept while the broker still counted the sockets that just closed.
        }

        client.Dispose();
        return null;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string failure)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!await condition())
        {
            Assert.False(cts.IsCancellationRequested, failure);
            await Task.Delay(20, CancellationToken.None);
        }
    }

    [GeneratedRegex(@"up to (?<connections>\d+) MQTT connections, (?<sockets>\d+) accepted sockets")]
    private static partial Regex BudgetLine();
}
