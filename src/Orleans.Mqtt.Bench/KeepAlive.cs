namespace Orleans.Mqtt.Bench;

/// <summary>One loop that pings every connected client at half the keep alive, instead of a timer per connection.</summary>
internal static class KeepAlive
{
    /// <summary>Pings the connected clients of <paramref name="clients"/> every <paramref name="keepAlive"/>/2 seconds until cancelled.</summary>
    public static async Task RunAsync(Func<IReadOnlyList<BenchClient>> clients, ushort keepAlive, CancellationToken stop)
    {
        if (keepAlive == 0)
        {
            return;
        }

        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(keepAlive / 2.0));
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                foreach (var client in clients())
                {
                    if (client.IsConnected)
                    {
                        await client.PingAsync().ConfigureAwait(false);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
