using System.Diagnostics.Metrics;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Orleans.Mqtt.Gateway;
using Orleans.Mqtt.Telemetry;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// What the open-file limit leaves for connections (<see cref="ConnectionBudget"/>) and how the gateway holds to it
/// (<see cref="SocketAdmission"/>).
/// </summary>
public sealed class ConnectionBudgetTests
{
    [Theory]
    // The default Mqtt:MaxConnections under this machine's limit: lowered to the limit less the open files and the reserve.
    [InlineData(100_000, 20_000, 300, 512, 19_188, 19_444)]
    // A configured maximum below what the limit leaves stays; the sockets are still held to the limit.
    [InlineData(1_000, 20_000, 300, 512, 1_000, 19_444)]
    // No reserve: everything the limit leaves, for sessions and sockets alike.
    [InlineData(100_000, 1_024, 24, 0, 1_000, 1_000)]
    // An odd reserve: the process keeps the smaller half (64 of 129) beyond the sockets.
    [InlineData(100_000, 600, 273, 129, 198, 263)]
    public void Connections_and_sockets_stop_short_of_the_file_limit(int maxConnections, long fileLimit, long open, int reserve, int connections, int sockets)
    {
        var budget = ConnectionBudget.Compute(maxConnections, fileLimit, open, reserve);
        Assert.NotNull(budget);
        Assert.Equal(connections, budget.Value.MaxConnections);
        Assert.Equal(sockets, budget.Value.MaxSockets);
        Assert.Equal(connections < maxConnections, budget.Value.Lowers(maxConnections));
    }

    [Theory]
    [InlineData(0L)] // the system did not say
    [InlineData(long.MaxValue)] // RLIM_INFINITY
    public void An_unknown_or_unlimited_file_limit_leaves_the_configured_maximum(long fileLimit)
    {
        var budget = ConnectionBudget.Compute(100_000, fileLimit, 300, 512)!.Value;
        Assert.Equal(100_000, budget.MaxConnections);
        Assert.False(budget.Lowers(100_000));
        Assert.True(budget.MaxSockets >= 100_000);
    }

    [Theory]
    [InlineData(400L, 273L, 512)] // the reserve alone is more than the limit leaves
    [InlineData(400L, 272L, 128)] // exactly nothing left
    public void A_file_limit_that_leaves_no_connection_gives_no_budget(long fileLimit, long open, int reserve) =>
        Assert.Null(ConnectionBudget.Compute(100_000, fileLimit, open, reserve));

    [Fact]
    public void The_gateway_refuses_sessions_and_sockets_past_the_budget_and_admits_again_once_one_is_given_back()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var gateway = Gateway(services, new MqttGatewayOptions { MaxConnections = 100_000, FileDescriptorReserve = 8 });
        gateway.ApplyFileLimit(new OpenFileLimit.State(100, 120, 120, 0), openFiles: 100);
        Assert.Equal(12, gateway.MaxConnections);
        Assert.True(gateway.MaxConnectionsLowered);
        Assert.Equal(16, gateway.Sockets.MaxSockets);

        for (var i = 0; i < 12; i++)
        {
            Assert.True(gateway.TryAcquireSessionSlot());
        }

        Assert.False(gateway.TryAcquireSessionSlot());
        gateway.ReleaseSessionSlot();
        Assert.True(gateway.TryAcquireSessionSlot());

        for (var i = 0; i < 16; i++)
        {
            Assert.True(gateway.Sockets.TryAdmit());
        }

        Assert.False(gateway.Sockets.TryAdmit());
        Assert.Equal(16, gateway.Sockets.OpenSockets);
        gateway.Sockets.Release();
        Assert.True(gateway.Sockets.TryAdmit());
    }

    [Fact]
    public void Sockets_are_admitted_without_limit_until_the_budget_is_known_and_a_budget_above_the_maximum_does_not_lower_it()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var gateway = Gateway(services, new MqttGatewayOptions { MaxConnections = 10, FileDescriptorReserve = 8 });
        Assert.Equal(int.MaxValue, gateway.Sockets.MaxSockets);
        Assert.True(gateway.Sockets.TryAdmit());

        gateway.ApplyFileLimit(new OpenFileLimit.State(100, 120, 120, 0), openFiles: 100);
        Assert.Equal(10, gateway.MaxConnections);
        Assert.False(gateway.MaxConnectionsLowered);
        Assert.Equal(16, gateway.Sockets.MaxSockets);
    }

    [Fact]
    public void A_refused_socket_is_counted_each_time_and_logged_once_per_interval()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var listener = new MeterListener();
        var refused = new List<string>();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, meters) && instrument.Name == "mqtt.connections.refused")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) => refused.Add((string)tags[0].Value!));
        listener.Start();
        var time = new FakeTimeProvider();
        var log = new Lines();
        var sockets = new SocketAdmission(new MqttMetrics(meters), time, log);
        sockets.Limit(new ConnectionBudget(1, 1, 600, 300));

        Assert.True(sockets.TryAdmit());
        for (var i = 0; i < 3; i++)
        {
            Assert.False(sockets.TryAdmit());
            sockets.CountRefusal(null);
        }

        time.Advance(LogLimiter.DefaultInterval);
        sockets.CountRefusal(null);

        Assert.Equal(["file_limit", "file_limit", "file_limit", "file_limit"], refused);
        Assert.Equal(2, log.Messages.Count);
        Assert.Contains("refused (file_limit): 1 sockets open, all the open file limit 600 leaves room for", log.Messages[0], StringComparison.Ordinal);
        Assert.EndsWith("2 more since the last line (one line per 10 s)", log.Messages[1], StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_limit_that_leaves_no_connection_fails_the_start_naming_the_limit_and_the_setting()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var gateway = Gateway(services, new MqttGatewayOptions());
        var ex = Assert.Throws<OpenFileLimitException>(() => gateway.ApplyFileLimit(new OpenFileLimit.State(400, 400, 400, 0), openFiles: 273));
        Assert.Contains("open file limit 400", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Mqtt:FileDescriptorReserve", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_process_soft_limit_is_raised_to_the_hard_limit_and_its_open_files_are_counted()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var limit = OpenFileLimit.Raise();
        Assert.True(limit.Soft > 0);
        Assert.Equal(limit.Hard, limit.Soft);
        Assert.Equal(0, limit.Error);

        // stdin, stdout, stderr and the test host's own files at least.
        var open = OpenFileLimit.CountOpen();
        Assert.True(open > 3, $"{open} files open");
    }

    [Theory]
    [InlineData(SocketError.TooManyOpenSockets, "too_many_open_files")] // EMFILE and ENFILE alike
    [InlineData(SocketError.NoBufferSpaceAvailable, "no_buffer_space")]
    [InlineData(SocketError.ConnectionReset, "reset")]
    [InlineData(SocketError.ConnectionAborted, "reset")]
    [InlineData(SocketError.AccessDenied, "other")]
    public void Accept_failures_are_counted_by_error(SocketError error, string tag) =>
        Assert.Equal(new KeyValuePair<string, object?>("error", tag), MqttSocketListener.AcceptErrorTag(error));

    private sealed class Lines : ILogger
    {
        public List<string> Messages { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Messages.Add(formatter(state, exception));
    }

    private static MqttGateway Gateway(ServiceProvider services, MqttGatewayOptions options) => new(
        null!,
        Options.Create(options),
        Options.Create(new MqttBrokerOptions()),
        new MqttMetrics(services.GetRequiredService<IMeterFactory>()),
        new FakeTimeProvider(),
        NullLoggerFactory.Instance);
}
