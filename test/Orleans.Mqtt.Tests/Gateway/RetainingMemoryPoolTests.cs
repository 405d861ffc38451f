using System.Buffers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// The gateway's pool for Kestrel's transports keeps every block it made: the next rents take the returned blocks, so
/// repeated bursts (waves of keep-alive pings) make no new pinned memory.
/// </summary>
public sealed class RetainingMemoryPoolTests
{
    [Fact]
    public void Returned_blocks_are_rented_again_and_no_more_are_made()
    {
        using var pool = new RetainingMemoryPool();
        var first = Burst(pool, 5);
        Assert.Equal(5, pool.BlocksMade);
        Assert.Equal(5, pool.BlocksIdle);

        // Wave after wave of the same size: the same five blocks, none made.
        for (var wave = 0; wave < 3; wave++)
        {
            var again = Burst(pool, 5);
            Assert.Equal(5, pool.BlocksMade);
            Assert.True(first.SetEquals(again));
        }

        // A larger wave makes only the difference.
        Burst(pool, 8);
        Assert.Equal(8, pool.BlocksMade);
        Assert.Equal(8, pool.BlocksIdle);
    }

    [Fact]
    public void Blocks_are_Kestrels_size_and_larger_rents_are_refused()
    {
        using var pool = new RetainingMemoryPool();
        Assert.Equal(4096, pool.MaxBufferSize);
        using (var block = pool.Rent())
        {
            Assert.Equal(4096, block.Memory.Length);
            using var pinned = block.Memory.Pin();
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(4097));
    }

    [Fact]
    public void The_gateway_gives_Kestrel_the_retaining_pool()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Test" });
        // A cluster client that is never started: the gateway's services need its grain factory.
        builder.UseOrleansClient(client => client.UseLocalhostClustering());
        builder.AddMqttGateway();
        using var app = builder.Build();
        var factory = app.Services.GetRequiredService<IMemoryPoolFactory<byte>>();
        Assert.IsType<RetainingMemoryPoolFactory>(factory);
        using var pool = factory.Create();
        Assert.IsType<RetainingMemoryPool>(pool);
    }

    // Rents n blocks at once, returns them all, and gives the memory each one had.
    private static HashSet<Memory<byte>> Burst(MemoryPool<byte> pool, int n)
    {
        var rented = Enumerable.Range(0, n).Select(_ => pool.Rent()).ToList();
        var memories = rented.Select(r => r.Memory).ToHashSet();
        foreach (var block in rented)
        {
            block.Dispose();
        }

        return memories;
    }
}
