using System.Net;
using System.Net.Sockets;
using Orleans.Mqtt.EndToEnd.Tests.Infrastructure;
using Orleans.Mqtt.Testing;

namespace Orleans.Mqtt.EndToEnd.Tests;

/// <summary>A bad setting stops a host at startup with a message that names the setting.</summary>
public sealed class HostConfigurationTests
{
    [Theory]
    [InlineData("silo", "Clustering__Provider", "Zookeeper", "Clustering:Provider must be Localhost, Etcd or Consul")]
    [InlineData("standalone", "Mqtt__MaxPacketSize", "10", "Mqtt:MaxPacketSize must be between 64 and 268435455")]
    [InlineData("standalone", "Mqtt__TopicShards", "0", "Mqtt:TopicShards must be between 1 and 1000000")]
    [InlineData("silo", "Mqtt__SessionIdleTimeout", "00:00:01", "Mqtt:SessionIdleTimeout must be at least 2 seconds")]
    [InlineData("gateway", "Mqtt__HeapTrimInterval", "-00:00:01", "Mqtt:HeapTrimInterval must be zero (off) or positive")]
    [InlineData("gateway", "Mqtt__BindAddress", "not-an-address", "Mqtt:BindAddress must be an IP address")]
    [InlineData("silo", "Clustering__Provider", "Consul", "Clustering:Provider=Consul needs Ownership:Etcd:ConnectionString")]
    [InlineData("gateway", "Clustering__Provider", "Consul", "Clustering:Provider=Consul needs Ownership:Etcd:ConnectionString")]
    [InlineData("silo", "Http__Port", "70000", "Http:Port must be between 0 and 65535")]
    [InlineData("gateway", "Http__Port", "70000", "Http:Port must be between 0 and 65535")]
    [InlineData("silo", "Http__Port", "eighty", "Http:Port")]
    [InlineData("silo", "Mqtt__BindAddress", "not-an-address", "Mqtt:BindAddress must be an IP address")]
    [InlineData("silo", "Host__ShutdownTimeout", "-00:00:05", "Host:ShutdownTimeout must be a positive time span")]
    public async Task A_bad_setting_stops_the_host_naming_the_setting(string host, string key, string value, string message)
    {
        var directory = BrokerProcess.TempDirectory();
        try
        {
            var dll = host switch
            {
                "silo" => Paths.SiloDll,
                "gateway" => Paths.GatewayDll,
                _ => Paths.StandaloneDll,
            };
            var environment = HostEnvironment(directory);
            environment[key] = value;
            await using var process = CliProcess.Start("dotnet", [dll], environment, directory);
            await process.WaitForExitAsync(TimeSpan.FromSeconds(60));

            Assert.NotEqual(0, process.ExitCode);
            Assert.Contains(process.Lines, l => l.Contains(message, StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("standalone", "Mqtt__Tcp__Port", "Mqtt:Tcp:Port")]
    [InlineData("standalone", "Http__Port", "Http:Port")]
    [InlineData("silo", "Http__Port", "Http:Port")]
    [InlineData("standalone", "Orleans__SiloPort", "Orleans:SiloPort")]
    [InlineData("silo", "Orleans__GatewayPort", "Orleans:GatewayPort")]
    public async Task A_listener_port_another_process_holds_stops_the_host_naming_the_setting(string host, string key, string setting)
    {
        var directory = BrokerProcess.TempDirectory();
        var port = LoopbackPorts.Next();
        var taken = new TcpListener(IPAddress.Loopback, port);

        if (key.StartsWith("Orleans__", StringComparison.Ordinal))
        {
            // Held the way a silo holds its Orleans ports (address reuse, which on Linux is SO_REUSEPORT too): a second
            // silo binding the same way would share the port without an error.
            taken.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        }

        taken.Start();
        try
        {
            var environment = HostEnvironment(directory);
            environment[key] = port.ToString();
            await using var process = CliProcess.Start("dotnet", [host == "silo" ? Paths.SiloDll : Paths.StandaloneDll], environment, directory);
            await process.WaitForExitAsync(TimeSpan.FromSeconds(60));

            // A clear refusal, not an unhandled exception (which aborts with 134).
            Assert.Equal(2, process.ExitCode);
            Assert.Contains(process.Lines, l => l.Contains($"change {setting}={port}", StringComparison.Ordinal) && l.Contains("address already in use", StringComparison.Ordinal));

            // The gateway's first heartbeat, on its way while the start fails, ends without a warning of its own.
            Assert.DoesNotContain(process.Lines, l => l.Contains("heartbeat failed", StringComparison.OrdinalIgnoreCase));
        }
        finally
        {
            taken.Stop();
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task A_silo_with_Http_Port_0_runs_without_an_http_listener()
    {
        var directory = BrokerProcess.TempDirectory();
        try
        {
            var environment = HostEnvironment(directory);
            environment["Http__Port"] = "0";
            await using var process = CliProcess.Start("dotnet", [Paths.SiloDll], environment, directory);
            await process.WaitForLineAsync(l => l.Contains("Application started", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

            // The web host logs each address it listens on before it reports the start.
            Assert.DoesNotContain(process.Lines, l => l.Contains("Now listening on", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    // What every host started here gets: free loopback ports, no WebSocket listener, its data in the test's directory.
    private static Dictionary<string, string> HostEnvironment(string directory) => new()
    {
        ["DOTNET_ENVIRONMENT"] = "Production",
        ["Mqtt__Tcp__Port"] = LoopbackPorts.Next().ToString(),
        ["Mqtt__WebSocket__Port"] = "0",
        ["Http__Port"] = LoopbackPorts.Next().ToString(),
        ["Orleans__SiloPort"] = LoopbackPorts.Next().ToString(),
        ["Orleans__GatewayPort"] = LoopbackPorts.Next().ToString(),
        ["Storage__DataDirectory"] = Path.Combine(directory, "data"),
    };
}
